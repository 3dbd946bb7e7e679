"""What the people running payrelay ask of it: one payment's story, the pipeline's health,
and the refunds that wait for a person (issue 12).

`payrelay trace`, `payrelay status`, `payrelay refunds …`, the `/admin` JSON endpoints and
the admin page all read through this one port, so they can never disagree.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from payrelay.domain.money import Money


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One thing that happened to a payment or its order, on either side."""

    at: datetime
    side: str
    """"payments" or "orders": whose database recorded it."""
    kind: str
    """What happened, dotted: "notification.received", "gateway.fetch_failed", "order.paid"…"""
    order_id: str | None
    payment_id: str | None
    detail: str
    """One line for a person: the status fetched, the error and the next try, the reason."""


@dataclass(frozen=True, slots=True)
class Trace:
    """Everything recorded about an order id or a payment id, joined and in time order."""

    query: str
    order_ids: tuple[str, ...]
    payment_ids: tuple[str, ...]
    steps: tuple[TraceStep, ...]

    @property
    def found(self) -> bool:
        return bool(self.steps)


@dataclass(frozen=True, slots=True)
class Backlog:
    """Rows waiting, and how long the oldest has waited (None when there are none)."""

    count: int
    oldest_age_seconds: float | None


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    """A worker process's last heartbeat; `up` is False once it is older than allowed."""

    name: str
    roles: tuple[str, ...]
    last_beat_at: datetime
    up: bool


@dataclass(frozen=True, slots=True)
class PipelineStatus:
    notifications_waiting: Backlog
    notifications_dead: int
    payments_outbox: Backlog
    orders_outbox: Backlog
    retrying: int
    """Messages waiting for a later try (outbox retries and the broker's retry queues)."""
    dead_letters: int
    unapplied_approvals: Backlog
    """Payments approved at the gateway whose order has not answered yet."""
    reconciler_last_run_at: datetime | None
    reconciler_findings: int
    refunds_pending: int
    refunds_held: int
    workers: tuple[WorkerBeat, ...]
    notifications_retrying: int = 0
    """Notifications whose fetch failed at least once and that wait for their next try."""
    last_notification_error: str | None = None
    """The newest of those failures' errors (e.g. "GatewayUnavailable: HTTP 503")."""
    orders_side: bool = True
    """False in a deployment without an orders database: its figures are not read."""


@dataclass(frozen=True, slots=True)
class HeldRefund:
    """A refund payrelay would not issue on its own; a person releases or dismisses it."""

    refund_id: str
    order_id: str
    payment_id: str
    amount: Money
    reason: str
    held_at: datetime


class UnknownRefund(LookupError):
    """No held refund has this id (it may have been released or dismissed already)."""


class Operations(Protocol):
    async def trace(self, order_or_payment_id: str) -> Trace: ...

    async def status(self) -> PipelineStatus: ...

    async def held_refunds(self) -> list[HeldRefund]: ...

    async def release_refund(self, refund_id: str) -> None:
        """Queue the held refund for the refunder, recorded in the timeline; UnknownRefund."""
        ...

    async def dismiss_refund(self, refund_id: str, reason: str) -> None:
        """Close the held refund without refunding, recorded with `reason`; UnknownRefund."""
        ...


class Heartbeats(Protocol):
    async def beat(
        self, name: str, roles: Sequence[str], *, at: datetime, sides: Collection[str]
    ) -> None:
        """Record that worker process `name`, running `roles`, is alive at `at`, in the
        database of each of `sides` ("payments", "orders"): those its roles use."""
        ...
