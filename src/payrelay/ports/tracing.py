"""Tracing: a span per step a payment takes, all in one trace per payment (issue 12).

Services open spans through this port and never see OpenTelemetry: the adapter
(adapters/tracing/otel.py) is built only when PAYRELAY_OTEL=true, with the `otel` extra
installed. Off, services get `NO_TRACING`, whose `span` returns one shared object that
does nothing, so the hot path pays a method call and no OpenTelemetry lookup.

A payment's steps run in different processes at different times (webhook answered, then
processed from the database, published by a relay, consumed, answered), so no in-memory
context links them. The trace is named by the payment's correlation id instead
(`provider:payment_id`): every span of one payment has the same trace id, derived from that
id, with no context stored anywhere. A message also carries its publish span's
`headers` (W3C `traceparent`), so the span that consumes it is that publish span's child.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from enum import StrEnum
from types import TracebackType
from typing import Protocol

__all__ = ["NO_TRACING", "Attributes", "NoTracing", "Span", "SpanName", "Tracing"]

Attributes = Mapping[str, str | int | bool]


class SpanName(StrEnum):
    """The steps of a payment's trace, in the order they happen."""

    WEBHOOK = "webhook"
    """The payments API recorded a signed webhook (or an IPN) about the payment."""
    PROCESSING = "processing"
    """A processor fetched the payment and stored what changed, with its events."""
    PUBLISH = "publish"
    """A relay published one outbox message (a payment event, or the order side's answer)."""
    CONSUME = "consume"
    """The order side applied a payment event to its order."""
    REPLY = "reply"
    """The payments side recorded the order side's answer (and any refund intent)."""


class Span(Protocol):
    @property
    def headers(self) -> Mapping[str, str]:
        """This span's context as message headers (`traceparent`), for a message to carry."""
        ...


class Tracing(Protocol):
    """Opens spans of a payment's trace; `NO_TRACING` when tracing is off."""

    @property
    def enabled(self) -> bool:
        """False when spans go nowhere: a caller may then skip preparing them at all."""
        ...

    def span(
        self,
        name: SpanName,
        *,
        correlation_id: str,
        attributes: Attributes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AbstractContextManager[Span]:
        """A span of the trace `correlation_id` names, ended when the block ends.

        Its parent is the span `headers` carry (a consumed message's `traceparent`), else
        the trace's root. An exception leaving the block marks the span failed.
        """
        ...


class _NoSpan:
    """The one span `NO_TRACING` hands out: it records nothing and carries nothing."""

    headers: Mapping[str, str] = {}

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class NoTracing:
    """Tracing off: every span is the same shared object, so off costs nearly nothing."""

    enabled = False
    _span = _NoSpan()

    def span(
        self,
        name: SpanName,
        *,
        correlation_id: str,
        attributes: Attributes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AbstractContextManager[Span]:
        return self._span


NO_TRACING = NoTracing()
