"""Outbox, inbox, timeline and dead letters: the same shape in both databases."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from payrelay.adapters.storage.database import Database, chunks
from payrelay.adapters.storage.work_queue import SqlWorkQueue, WorkTable
from payrelay.domain.events import Envelope
from payrelay.domain.work import OutboxStatus
from payrelay.ports import (
    Delivery,
    FailedTry,
    InboxEntry,
    OutboundMessage,
    SeenMessage,
    Subscription,
    TimelineEntry,
)


class SqlOutbox:
    def __init__(self, conn: AsyncConnection, table: Table, *, now: datetime) -> None:
        self._conn, self._t, self._now = conn, table, now

    async def add(self, envelope: Envelope, *, exchange: str) -> None:
        await self.add_many([envelope], exchange=exchange)

    async def add_many(self, envelopes: Sequence[Envelope], *, exchange: str) -> None:
        if not envelopes:
            return
        await self._conn.execute(insert(self._t), [
            {
                "message_id": str(envelope.message_id),
                "exchange": exchange,
                "routing_key": envelope.routing_key,
                "correlation_id": envelope.correlation_id,
                "body": envelope.to_json(),
                "order_id": envelope.order_id,
                "payment_id": envelope.payment_id,
                "status": OutboxStatus.PENDING,
                "attempts": 0,
                "created_at": self._now,
                "next_attempt_at": self._now,
            }
            for envelope in envelopes
        ])

    async def requeue(self, message_id: uuid.UUID) -> bool:
        result = await self._conn.execute(
            update(self._t)
            .where(self._t.c.message_id == str(message_id))
            .values(status=OutboxStatus.PENDING, next_attempt_at=self._now)
        )
        return bool(result.rowcount)

    async def requeue_many(self, message_ids: Sequence[uuid.UUID]) -> None:
        for chunk in chunks([str(m) for m in message_ids]):
            await self._conn.execute(
                update(self._t)
                .where(self._t.c.message_id.in_(chunk))
                .values(status=OutboxStatus.PENDING, next_attempt_at=self._now)
            )


class SqlInbox:
    def __init__(self, conn: AsyncConnection, table: Table) -> None:
        self._conn, self._t = conn, table

    async def seen(self, message_id: uuid.UUID) -> SeenMessage | None:
        return (await self.seen_many([message_id])).get(message_id)

    async def seen_many(
        self, message_ids: Sequence[uuid.UUID]
    ) -> Mapping[uuid.UUID, SeenMessage]:
        found: dict[uuid.UUID, SeenMessage] = {}
        for chunk in chunks([str(m) for m in message_ids]):
            query = select(self._t.c.message_id, self._t.c.reply_message_id).where(
                self._t.c.message_id.in_(chunk)
            )
            for row in await self._conn.execute(query):
                reply = row.reply_message_id
                found[uuid.UUID(row.message_id)] = SeenMessage(
                    uuid.UUID(reply) if reply else None
                )
        return found

    async def redirect_replies(self, payment_id: str, reply_id: uuid.UUID) -> None:
        await self._conn.execute(
            update(self._t)
            .where(self._t.c.payment_id == payment_id, self._t.c.reply_message_id.is_not(None))
            .values(reply_message_id=str(reply_id))
        )

    async def add(
        self, envelope: Envelope, *, received_at: datetime, reply_id: uuid.UUID | None
    ) -> None:
        await self.add_many([InboxEntry(envelope, reply_id)], received_at=received_at)

    async def add_many(self, entries: Sequence[InboxEntry], *, received_at: datetime) -> None:
        if not entries:
            return
        await self._conn.execute(insert(self._t), [
            {
                "message_id": str(entry.envelope.message_id),
                "type": entry.envelope.type.value,
                "payment_id": entry.envelope.payment_id,
                "received_at": received_at,
                "reply_message_id": str(entry.reply_id) if entry.reply_id else None,
            }
            for entry in entries
        ])


class SqlTimeline:
    def __init__(self, conn: AsyncConnection, table: Table) -> None:
        self._conn, self._t = conn, table

    async def record(
        self,
        step: str,
        *,
        at: datetime,
        order_id: str | None,
        payment_id: str | None,
        detail: str | None = None,
    ) -> None:
        await self.record_many([TimelineEntry(step, at, order_id, payment_id, detail)])

    async def record_many(self, entries: Sequence[TimelineEntry]) -> None:
        if not entries:
            return
        await self._conn.execute(insert(self._t), [
            {"at": e.at, "order_id": e.order_id, "payment_id": e.payment_id, "step": e.step,
             "detail": e.detail}
            for e in entries
        ])


class SqlDeadLetters:
    def __init__(self, conn: AsyncConnection, table: Table) -> None:
        self._conn, self._t = conn, table

    async def add(
        self,
        delivery: Delivery,
        *,
        subscription: Subscription,
        reason: str,
        error: str,
        at: datetime,
    ) -> None:
        headers = delivery.headers
        await self._conn.execute(
            insert(self._t).values(
                message_id=delivery.message_id,
                exchange=subscription.exchange,
                routing_key=delivery.routing_key,
                queue=subscription.queue,
                body=delivery.body,
                reason=reason,
                error=error[:2000],
                attempts=int(headers.get("x-payrelay-attempts", "1")),
                dead_at=at,
            )
        )


def _outbound(row: Row[Any]) -> OutboundMessage:
    return OutboundMessage(
        message_id=uuid.UUID(row.message_id),
        exchange=row.exchange,
        routing_key=row.routing_key,
        correlation_id=row.correlation_id,
        body=row.body,
        attempts=row.attempts,
        order_id=row.order_id,
        payment_id=row.payment_id,
        created_at=row.created_at,
    )


def outbox_work(table: Table) -> WorkTable[OutboundMessage]:
    """Either database's outbox as stored work: every failed try counts in `attempts`."""
    return WorkTable(
        table=table,
        key="message_id",
        order="seq",
        waiting=OutboxStatus.PENDING,
        dead=OutboxStatus.DEAD,
        work=_outbound,
        key_of=lambda m: str(m.message_id),
        failures=None,
    )


class SqlOutboxRelayStore(SqlWorkQueue[OutboundMessage]):
    """The relay's view of one outbox; a message given up on is copied to dead letters."""

    def __init__(
        self, db: Database, table: Table, dead_letters: Table, timeline: Table
    ) -> None:
        super().__init__(db, outbox_work(table))
        self._dead = dead_letters
        self._timeline = timeline

    async def mark_sent(
        self, message_ids: Sequence[uuid.UUID], *, now: datetime,
        timeline: Sequence[TimelineEntry] = (),
    ) -> None:
        if not message_ids:
            return
        async with self._db.transaction() as conn:
            await SqlTimeline(conn, self._timeline).record_many(timeline)
            await conn.execute(self._w.finish(
                [str(m) for m in message_ids], OutboxStatus.SENT, sent_at=now
            ))

    async def record_failures(
        self, failed: Sequence[FailedTry[OutboundMessage]], *, now: datetime
    ) -> None:
        if not failed:
            return
        async with self._db.transaction() as conn:
            for dead in await self.write_failures(conn, failed, now=now):
                await self._dead_letter(conn, dead, now)

    async def _dead_letter(
        self, conn: AsyncConnection, failed: FailedTry[OutboundMessage], now: datetime
    ) -> None:
        message = failed.work
        await conn.execute(
            insert(self._dead).values(
                message_id=str(message.message_id),
                exchange=message.exchange,
                routing_key=message.routing_key,
                queue=None,
                body=message.body,
                reason=_dead_reason(failed.decision.gave_up),
                error=failed.error[:2000],
                attempts=message.attempts + 1,
                dead_at=now,
            )
        )

    async def pending_count(self) -> int:
        t = self._w.table
        query = select(func.count()).select_from(t).where(t.c.status == OutboxStatus.PENDING)
        async with self._db.read() as conn:
            return int((await conn.execute(query)).scalar_one())


def _dead_reason(gave_up: str | None) -> str:
    """The reason as `payrelay dlq` shows it; a spent schedule keeps its established words."""
    if gave_up is None or gave_up.startswith("failed:"):
        return "consumer retries exhausted"
    return gave_up
