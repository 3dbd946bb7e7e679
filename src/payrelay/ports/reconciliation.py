"""What the reconciler asks of the payments database."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from payrelay.ports.messaging import TimelineEntry


class ReconciliationStore(Protocol):
    """What the reconciler asks of the payments database."""

    async def unanswered_approvals(
        self, *, updated_before: datetime, limit: int
    ) -> list[str]: ...

    async def resend_approvals(
        self, payment_ids: Sequence[str], *, now: datetime,
        timeline: Mapping[str, TimelineEntry] | None = None,
    ) -> list[str]:
        """Publish these approvals again, restarting their SLA; returns the ids re-sent,
        and writes `timeline[id]` of each of them in the same transaction.

        Never waits for a row lock: a payment another transaction holds is skipped (left
        for a later run), so the reconciler cannot deadlock with the consumers."""
        ...

    async def checkouts_to_verify(
        self, *, created_before: datetime, created_after: datetime, limit: int
    ) -> list[str]: ...

    async def mark_verified(self, order_id: str, *, now: datetime) -> None: ...

    async def known_updates(self, payment_ids: Sequence[str]) -> dict[str, datetime]:
        """The gateway's date_last_updated payrelay holds for each payment it knows."""
        ...

    async def unsettled(self, *, updated_before: datetime, limit: int) -> list[str]: ...

    async def sweep_watermark(self, provider: str) -> datetime | None:
        """Where the next sweep starts (None before the first): every payment the gateway
        last updated before it has been read."""
        ...

    async def advance_sweep_watermark(
        self, provider: str, watermark: datetime, *, now: datetime
    ) -> None:
        """Move the watermark forward to `watermark`; an earlier one leaves it as it is."""
        ...

    async def save_report(
        self, report: dict[str, Any], *, started_at: datetime, finished_at: datetime
    ) -> None: ...
