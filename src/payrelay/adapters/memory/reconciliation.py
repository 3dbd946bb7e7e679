"""The payments database as the reconciler reads it, in memory.

The SQL store never waits for a row lock (SKIP LOCKED); here transactions run one at a
time, so there is nothing to skip and every listed payment is looked at.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from payrelay.adapters.memory.messaging import MemoryTimeline
from payrelay.adapters.memory.payments import PaymentsDatabase, PaymentsState, ReportRow
from payrelay.domain.events import EventType
from payrelay.domain.order import WAS_APPROVED
from payrelay.domain.payment import UNSETTLED, PaymentStatus
from payrelay.domain.work import OutboxStatus
from payrelay.ports import TimelineEntry


class MemoryReconciliationStore:
    def __init__(self, db: PaymentsDatabase) -> None:
        self._db = db

    async def unanswered_approvals(self, *, updated_before: datetime, limit: int) -> list[str]:
        state = self._db.committed()
        rows = sorted(
            (row for row in state.payments.values()
             if _unanswered(state, row.payment.payment_id)
             and row.payment.snapshot.order_id is not None and row.updated_at < updated_before),
            key=lambda row: row.updated_at,
        )
        return [row.payment.payment_id for row in rows[:limit]]

    async def resend_approvals(
        self, payment_ids: Sequence[str], *, now: datetime,
        timeline: Mapping[str, TimelineEntry] | None = None,
    ) -> list[str]:
        """Make the sent approvals pending again (same id), restarting their SLA."""
        async with self._db.transaction() as state:
            # Listed before this transaction: the answer may have come since.
            still = sorted(p for p in set(payment_ids) if _unanswered(state, p))
            resent: set[str] = set()
            for key, row in list(state.outbox.items()):
                if (row.payment_id in still and row.status == OutboxStatus.SENT
                        and row.routing_key == EventType.PAYMENT_APPROVED.value):
                    # A dead approval waits for a person's replay, not for the next SLA.
                    state.outbox[key] = dataclasses.replace(
                        row, status=OutboxStatus.PENDING, next_attempt_at=now
                    )
                    resent.add(row.payment_id)
            for payment_id in still:
                state.payments[payment_id] = dataclasses.replace(
                    state.payments[payment_id], updated_at=now
                )
            await MemoryTimeline(state).record_many(
                [timeline[r] for r in sorted(resent) if r in timeline] if timeline else [])
        return sorted(resent)

    async def checkouts_to_verify(
        self, *, created_before: datetime, created_after: datetime, limit: int
    ) -> list[str]:
        """Each checkout once when old enough, then every window while none is approved."""
        state = self._db.committed()
        approved = {
            row.payment.snapshot.order_id for row in state.payments.values()
            if row.payment.status in WAS_APPROVED
        }
        due = [
            row for row in state.checkouts.values()
            if created_after < row.created_at < created_before and (
                row.reconciled_at is None
                or (row.checkout.order_id not in approved and row.reconciled_at < created_before)
            )
        ]
        due.sort(key=lambda row: (row.reconciled_at is not None,
                                  row.reconciled_at or row.created_at))
        return [row.checkout.order_id for row in due[:limit]]

    async def mark_verified(self, order_id: str, *, now: datetime) -> None:
        async with self._db.transaction() as state:
            row = state.checkouts.get(order_id)
            if row is not None:
                state.checkouts[order_id] = dataclasses.replace(row, reconciled_at=now)

    async def known_updates(self, payment_ids: Sequence[str]) -> dict[str, datetime]:
        payments = self._db.committed().payments
        return {
            pid: payments[pid].payment.snapshot.date_last_updated
            for pid in payment_ids if pid in payments
        }

    async def unsettled(self, *, updated_before: datetime, limit: int) -> list[str]:
        rows = sorted(
            (row for row in self._db.committed().payments.values()
             if row.payment.status in UNSETTLED and row.updated_at < updated_before),
            key=lambda row: row.updated_at,
        )
        return [row.payment.payment_id for row in rows[:limit]]

    async def sweep_watermark(self, provider: str) -> datetime | None:
        return self._db.committed().sweep_watermarks.get(provider)

    async def advance_sweep_watermark(
        self, provider: str, watermark: datetime, *, now: datetime
    ) -> None:
        """Never moves it back: a slower concurrent run's earlier mark changes nothing."""
        async with self._db.transaction() as state:
            current = state.sweep_watermarks.get(provider)
            if current is None or current < watermark:
                state.sweep_watermarks[provider] = watermark

    async def save_report(
        self, report: dict[str, Any], *, started_at: datetime, finished_at: datetime
    ) -> None:
        async with self._db.transaction() as state:
            state.reports.append(
                ReportRow(started_at=started_at, finished_at=finished_at, report=report)
            )


def _unanswered(state: PaymentsState, payment_id: str) -> bool:
    row = state.payments.get(payment_id)
    return (row is not None and row.payment.status is PaymentStatus.APPROVED
            and row.order_outcome is None)
