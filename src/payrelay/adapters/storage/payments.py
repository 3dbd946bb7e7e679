"""The payments database: notifications, checkouts, payments, and its outbox and inbox."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import (
    Database,
    insert_ignoring_conflicts,
)
from payrelay.adapters.storage.group_commit import GroupCommitter
from payrelay.adapters.storage.messages import (
    SqlDeadLetters,
    SqlInbox,
    SqlOutbox,
    SqlOutboxRelayStore,
    SqlTimeline,
)
from payrelay.adapters.storage.refunds import SqlRefunds
from payrelay.adapters.storage.stored_payments import SqlPayments
from payrelay.adapters.storage.work_queue import SqlWorkQueue, WorkTable
from payrelay.domain.money import Money
from payrelay.domain.work import NotificationStatus
from payrelay.ports import (
    Checkout,
    ClaimedNotification,
    Clock,
    Inbox,
    NotificationRecord,
    TimelineEntry,
)


class SqlNotificationLog:
    """Records webhooks through a group commit: one fsync serves many concurrent requests."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._committer: GroupCommitter[NotificationRecord, bool] = GroupCommitter(
            db, self._write
        )

    async def record(self, notification: NotificationRecord) -> bool:
        return await self._committer.submit(notification)

    async def close(self) -> None:
        await self._committer.close()

    async def _write(
        self, conn: AsyncConnection, batch: Sequence[NotificationRecord]
    ) -> list[bool]:
        rows = [notification_row(n) for n in batch]
        stmt = insert_ignoring_conflicts(self._db, t.notifications).returning(
            t.notifications.c.dedupe_key
        )
        inserted = set((await conn.execute(stmt, rows)).scalars().all())
        results = []
        for n in batch:  # the same key twice in one batch: only the first one is new
            results.append(n.dedupe_key in inserted)
            inserted.discard(n.dedupe_key)
        # Every delivery, duplicates too, in the same commit and one statement: the port
        # promises it, so `payrelay trace` shows each delivery the gateway made.
        await SqlTimeline(conn, t.payments_timeline).record_many(
            [_received(n, is_new) for n, is_new in zip(batch, results, strict=True)]
        )
        return results


def _received(n: NotificationRecord, is_new: bool) -> TimelineEntry:
    """The delivery's timeline row. Its order is only a hint (unsigned), so it goes in the
    detail, never in `order_id`: the trace joins hints through `notifications.order_hint`."""
    step = "notification.received" if is_new else "notification.duplicate"
    hint = f"; order hint {n.order_hint}" if n.order_hint else ""
    return TimelineEntry(step, n.received_at, None, n.resource_id,
                         f"{n.topic} {n.action or ''}".strip() + hint)


def notification_row(n: NotificationRecord) -> dict[str, Any]:
    return {
        "dedupe_key": n.dedupe_key,
        "provider": n.provider,
        "topic": n.topic,
        "action": n.action,
        "resource_id": n.resource_id,
        "request_id": n.request_id,
        "order_hint": n.order_hint,
        "status": NotificationStatus.IGNORED if n.ignored else NotificationStatus.RECEIVED,
        "attempts": 0,
        "received_at": n.received_at,
        "next_attempt_at": n.due_at or n.received_at,
    }


def _claimed(row: Row[Any]) -> ClaimedNotification:
    return ClaimedNotification(row.id, row.resource_id, row.attempts, row.failures,
                               row.received_at, row.order_hint)


NOTIFICATION_WORK: WorkTable[ClaimedNotification] = WorkTable(
    table=t.notifications,
    key="id",
    order="id",
    waiting=NotificationStatus.RECEIVED,
    dead=NotificationStatus.DEAD,
    work=_claimed,
    key_of=lambda n: n.id,
    stamped_on_dead=("processed_at",),
)


class SqlNotificationQueue(SqlWorkQueue[ClaimedNotification]):
    """Recorded notifications waiting for the processor; `postpone` is the queue's own."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, NOTIFICATION_WORK)


class SqlNotifications:
    def __init__(self, conn: AsyncConnection, db: Database) -> None:
        self._conn, self._db = conn, db

    async def record(self, notification: NotificationRecord) -> bool:
        result = await self._conn.execute(
            insert_ignoring_conflicts(self._db, t.notifications).values(
                **notification_row(notification)
            )
        )
        return bool(result.rowcount)

    async def mark_processed(self, ids: Sequence[int], *, now: datetime) -> None:
        await self._conn.execute(
            NOTIFICATION_WORK.finish(ids, NotificationStatus.PROCESSED, processed_at=now)
        )


class SqlCheckouts:
    def __init__(self, conn: AsyncConnection, db: Database) -> None:
        self._conn, self._db = conn, db

    async def get(self, order_id: str) -> Checkout | None:
        row = (
            await self._conn.execute(select(t.checkouts).where(t.checkouts.c.order_id == order_id))
        ).first()
        if row is None:
            return None
        return Checkout(
            order_id=row.order_id,
            provider=row.provider,
            preference_id=row.preference_id,
            init_point=row.init_point,
            amount=Money.from_minor(row.amount_minor, row.currency),
        )

    async def add(self, checkout: Checkout, *, now: datetime) -> Checkout:
        await self._conn.execute(
            insert_ignoring_conflicts(self._db, t.checkouts).values(
                order_id=checkout.order_id,
                provider=checkout.provider,
                preference_id=checkout.preference_id,
                init_point=checkout.init_point,
                amount_minor=checkout.amount.minor_units,
                currency=checkout.amount.currency,
                created_at=now,
            )
        )
        stored = await self.get(checkout.order_id)
        assert stored is not None
        return stored


class SqlPaymentsTx:
    def __init__(self, conn: AsyncConnection, db: Database, now: datetime) -> None:
        self.conn = conn
        self.notifications = SqlNotifications(conn, db)
        self.payments = SqlPayments(conn, db)
        self.checkouts = SqlCheckouts(conn, db)
        self.refunds = SqlRefunds(conn, db)
        self.outbox = SqlOutbox(conn, t.payments_outbox, now=now)
        self.inbox: Inbox = SqlInbox(conn, t.payments_inbox)
        self.timeline = SqlTimeline(conn, t.payments_timeline)
        self.dead_letters = SqlDeadLetters(conn, t.payments_dead_letters)


class SqlPaymentsUnitOfWork:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self._clock = clock
        self.relay_store = SqlOutboxRelayStore(
            db, t.payments_outbox, t.payments_dead_letters, t.payments_timeline
        )

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[SqlPaymentsTx]:
        async with self.db.transaction() as conn:
            yield SqlPaymentsTx(conn, self.db, self._clock())
