"""Stored work: rows claimed with a lease, retried by the retry decision, or given up.

Notifications, both outboxes and refunds are all this one shape. A claim moves the row's
due time past a short lease; the worker renews it (`extend`) while the work is in hand,
so a worker that dies gives its claims back within one lease, not after a long timeout.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from payrelay.domain.refund import RefundRequest
from payrelay.domain.retry import RetryDecision
from payrelay.ports.messaging import TimelineEntry
from payrelay.ports.transport import OutboundMessage

K = TypeVar("K")
W = TypeVar("W")


@dataclass(frozen=True, slots=True)
class FailedTry(Generic[K]):
    """One try of stored work that failed, and what `decide_retry` made of it.

    Every queue stores it the same way: a retry at `decision.retry_at` (counting a failure
    only when `decision.spends_attempt`), or, when the decision gave up, a dead state that
    keeps `decision.gave_up` and `error` for `payrelay dlq`."""

    work: K
    error: str
    decision: RetryDecision


class WorkQueue(Protocol[W]):
    """One kind of stored work; each call is its own short transaction."""

    async def claim_due(self, *, limit: int, now: datetime, lease: timedelta) -> list[W]:
        """Up to `limit` rows due at `now`, oldest first, held until `now + lease`.

        Two workers never claim the same row while its lease runs (PostgreSQL: SKIP LOCKED).
        """
        ...

    async def extend(self, work: Sequence[W], *, until: datetime) -> None:
        """Keep these claims until `until`: the heartbeat of a worker still on them.

        Only work still waiting is extended: a heartbeat that lands after the work was
        finished or given up leaves it as it is. It does move a stored retry's time, so a
        worker records failures only once its heartbeat has stopped (`services/claims.py`).
        """
        ...

    async def record_failures(self, failed: Sequence[FailedTry[W]], *, now: datetime) -> None:
        """Retry each at its decision's time, or mark it dead with its reason."""
        ...


@dataclass(frozen=True, slots=True)
class ClaimedNotification:
    id: int
    resource_id: str
    attempts: int
    """Earlier tries of any kind (they pace the backoff)."""
    failures: int = 0
    """Earlier tries that counted towards giving up."""
    received_at: datetime | None = None
    order_hint: str | None = None
    """The order id its notification_url carried: untrusted, for timeline rows only."""


class NotificationQueue(WorkQueue[ClaimedNotification], Protocol):
    async def postpone(self, ids: Sequence[int], *, until: datetime) -> None:
        """Make claimed notifications due again at `until`, without counting a try."""
        ...


class OutboxRelayStore(WorkQueue[OutboundMessage], Protocol):
    """The relay's view of an outbox."""

    async def mark_sent(
        self, message_ids: Sequence[uuid.UUID], *, now: datetime,
        timeline: Sequence[TimelineEntry] = (),
    ) -> None:
        """Mark them sent and write `timeline` (their publish rows) in the same commit."""
        ...


class RefundQueue(WorkQueue[RefundRequest], Protocol):
    """Refunds waiting for the gateway; what became of one is written through `Refunds`."""
