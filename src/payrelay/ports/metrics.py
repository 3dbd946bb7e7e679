"""What the services count and time, in domain words; an adapter turns it into a metric system.

Services cannot import a metrics library (the vendor rule), so they call these methods and
bootstrap passes the adapter (Prometheus) in. `NoMetrics` is the default: a service built
without metrics, as most tests build them, counts nothing and costs nothing.

Labels are small closed sets (a provider, a step, a result): never an order id, a payment
id or anything a secret could be in, so a series count cannot grow with traffic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Metrics", "NoMetrics", "OutboxLag", "OutboxLagReader", "Scrape"]


@dataclass(frozen=True, slots=True)
class OutboxLag:
    """An outbox's pending rows and the age of the oldest of them (0 when none)."""

    rows: int
    oldest_seconds: float


OutboxLagReader = Callable[[], Awaitable[OutboxLag]]
"""Reads one outbox's lag from its database, at scrape time."""


@dataclass(frozen=True, slots=True)
class Scrape:
    """A metrics page: its body and its content type."""

    body: bytes
    content_type: str


class Metrics(Protocol):
    def notification_received(self, *, provider: str, result: str) -> None:
        """One webhook or IPN answered: recorded, duplicate, ignored, or rejected."""

    def signature_failed(self, *, provider: str) -> None:
        """A webhook whose x-signature did not hold (or was missing or malformed)."""

    def gateway_called(self, *, operation: str, seconds: float, error: str | None) -> None:
        """One gateway call, how long it took, and the error class if it failed."""

    def published(self, *, relay: str, confirmed: int, failed: int) -> None:
        """One relay batch: how many the transport confirmed, how many it did not."""

    def consumed(self, *, consumer: str, outcome: str, count: int) -> None:
        """What a consumer's committed batch did: applied, duplicate, stale, dead_lettered."""

    def retried(self, *, step: str, kind: str) -> None:
        """A failed try of stored work that will be tried again."""

    def gave_up(self, *, step: str) -> None:
        """A failed try that will not be tried again: a dead letter with its reason."""

    def dead_lettered(self, *, subscription: str, count: int) -> None:
        """Messages a transport gave up on, stored in the consumer's dead letters."""

    def reconciler_fixed(self, *, check: str, count: int) -> None:
        """Work the reconciler put back on the normal path, by which check found it."""

    def refund_finished(self, *, result: str) -> None:
        """A refund attempt's end: refunded, already_covered, held, retried, dead, requested."""

    def order_paid(self, *, seconds_since_approval: float) -> None:
        """An order was paid (its outcome reached payments), this long after the approval."""

    def watch_outbox(self, name: str, read: OutboxLagReader) -> None:
        """Read this outbox's lag at every scrape."""

    async def scrape(self) -> Scrape:
        """The current values, in the adapter's exposition format."""
        ...


class NoMetrics:
    """Counts nothing: the default for services and tests built without metrics."""

    def notification_received(self, *, provider: str, result: str) -> None:
        pass

    def signature_failed(self, *, provider: str) -> None:
        pass

    def gateway_called(self, *, operation: str, seconds: float, error: str | None) -> None:
        pass

    def published(self, *, relay: str, confirmed: int, failed: int) -> None:
        pass

    def consumed(self, *, consumer: str, outcome: str, count: int) -> None:
        pass

    def retried(self, *, step: str, kind: str) -> None:
        pass

    def gave_up(self, *, step: str) -> None:
        pass

    def dead_lettered(self, *, subscription: str, count: int) -> None:
        pass

    def reconciler_fixed(self, *, check: str, count: int) -> None:
        pass

    def refund_finished(self, *, result: str) -> None:
        pass

    def order_paid(self, *, seconds_since_approval: float) -> None:
        pass

    def watch_outbox(self, name: str, read: OutboxLagReader) -> None:
        pass

    async def scrape(self) -> Scrape:
        return Scrape(b"", "text/plain; charset=utf-8")
