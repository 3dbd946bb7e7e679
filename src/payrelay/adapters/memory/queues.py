"""The processor's and the refunder's queues over the memory payments database.

Each call is its own short transaction, as in SQL; the claim, retry and dead rules are the
ones of `work.py`, shared with the outboxes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

from payrelay.adapters.memory.payments import NotificationRow, PaymentsDatabase, RefundRow
from payrelay.adapters.memory.work import claim, given_up, move_due, retried
from payrelay.domain.work import NotificationStatus, RefundStatus
from payrelay.ports import ClaimedNotification, FailedTry, RefundRequest

RECEIVED, REQUESTED = NotificationStatus.RECEIVED, RefundStatus.REQUESTED


class MemoryNotificationQueue:
    def __init__(self, db: PaymentsDatabase) -> None:
        self._db = db

    async def claim_due(
        self, *, limit: int, now: datetime, lease: timedelta
    ) -> list[ClaimedNotification]:
        async with self._db.transaction() as state:
            rows = claim(state.notifications, waiting=RECEIVED, now=now, lease=lease,
                         limit=limit, order=lambda r: r.id)
        return [_claimed(row) for row in rows]

    async def extend(self, work: Sequence[ClaimedNotification], *, until: datetime) -> None:
        await self.postpone([w.id for w in work], until=until)

    async def postpone(self, ids: Sequence[int], *, until: datetime) -> None:
        async with self._db.transaction() as state:
            move_due(state.notifications, ids, waiting=RECEIVED, until=until)

    async def record_failures(
        self, failed: Sequence[FailedTry[ClaimedNotification]], *, now: datetime
    ) -> None:
        async with self._db.transaction() as state:
            rows = state.notifications
            for each in failed:
                row = rows.get(each.work.id)
                if row is None or row.status != RECEIVED:
                    continue
                if each.decision.retry_at is not None:
                    rows[row.id] = retried(row, each.decision, each.error)
                else:
                    dead = given_up(row, each.decision, each.error,
                                    dead=NotificationStatus.DEAD)
                    rows[row.id] = dataclasses.replace(dead, processed_at=now)


def _claimed(row: NotificationRow) -> ClaimedNotification:
    return ClaimedNotification(
        id=row.id, resource_id=row.record.resource_id or "", attempts=row.attempts,
        failures=row.failures, received_at=row.record.received_at,
        order_hint=row.record.order_hint,
    )


class MemoryRefundQueue:
    def __init__(self, db: PaymentsDatabase) -> None:
        self._db = db

    async def claim_due(
        self, *, limit: int, now: datetime, lease: timedelta
    ) -> list[RefundRequest]:
        async with self._db.transaction() as state:
            rows = claim(state.refunds, waiting=REQUESTED, now=now, lease=lease, limit=limit,
                         order=lambda r: (r.next_attempt_at, r.request.payment_id))
        return [_request(row) for row in rows]

    async def extend(self, work: Sequence[RefundRequest], *, until: datetime) -> None:
        async with self._db.transaction() as state:
            move_due(state.refunds, [w.payment_id for w in work], waiting=REQUESTED,
                     until=until)

    async def record_failures(
        self, failed: Sequence[FailedTry[RefundRequest]], *, now: datetime
    ) -> None:
        async with self._db.transaction() as state:
            rows = state.refunds
            for each in failed:
                row = rows.get(each.work.payment_id)
                if row is None or row.status != REQUESTED:
                    continue
                if each.decision.retry_at is not None:
                    row = retried(row, each.decision, each.error)
                else:
                    row = given_up(row, each.decision, each.error, dead=RefundStatus.DEAD)
                rows[row.request.payment_id] = dataclasses.replace(row, updated_at=now)


def _request(row: RefundRow) -> RefundRequest:
    return dataclasses.replace(
        row.request, attempts=row.attempts, failures=row.failures, created_at=row.created_at
    )
