"""Spans for work done in batches: one span per payment or message, all open together.

Every service works on batches (a claim, a consumer's batch) in one transaction, so each
item's span covers the whole batch's work: that is how long its step really took. The
spans are independent siblings, never nested in one another, whatever order the stack
enters them in (the adapter never makes a span current).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from payrelay.domain.events import Envelope
from payrelay.ports import Delivery, Span, SpanName, Tracing
from payrelay.ports.tracing import Attributes

__all__ = ["SpanStart", "batch_spans", "envelope_spans"]


@dataclass(frozen=True, slots=True)
class SpanStart:
    """What one item's span is opened with."""

    correlation_id: str
    attributes: Attributes = field(default_factory=dict)
    headers: Mapping[str, str] | None = None


@contextlib.contextmanager
def batch_spans(
    tracing: Tracing, name: SpanName, starts: Iterable[SpanStart]
) -> Iterator[list[Span]]:
    """One span per item of `starts`, in its order; none (and `starts` unread) when off.

    An exception leaving the block marks every span failed: the batch failed as one.
    """
    if not tracing.enabled:
        yield []
        return
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(tracing.span(
                name, correlation_id=s.correlation_id, attributes=s.attributes,
                headers=s.headers,
            ))
            for s in starts
        ]


def envelope_spans(
    tracing: Tracing, name: SpanName, batch: Sequence[Delivery], envelopes: Sequence[Envelope]
) -> contextlib.AbstractContextManager[list[Span]]:
    """A consumer's spans: one per decoded envelope, a child of the span its delivery
    carries (the publish span), in the trace of its payment."""
    if not tracing.enabled:
        return batch_spans(tracing, name, ())
    headers = {d.message_id: d.headers for d in batch}
    return batch_spans(tracing, name, (
        SpanStart(e.correlation_id, _envelope_attributes(e), headers.get(str(e.message_id)))
        for e in envelopes
    ))


def _envelope_attributes(envelope: Envelope) -> dict[str, str | int | bool]:
    attributes: dict[str, str | int | bool] = {
        "messaging.message.id": str(envelope.message_id),
        "payrelay.event_type": envelope.type.value,
        "payrelay.order_id": envelope.order_id,
        "payrelay.payment_id": envelope.payment_id,
    }
    if envelope.reason is not None:
        attributes["payrelay.reason"] = envelope.reason.value
    return attributes
