"""Outbox, inbox, timeline and dead letters: the same shape in both databases."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from payrelay.adapters.storage.database import Database
from payrelay.domain.events import Envelope
from payrelay.domain.work import OutboxStatus
from payrelay.ports import Delivery, FailedTry, OutboundMessage, SeenMessage, Subscription

PENDING, SENT, DEAD = OutboxStatus.PENDING, OutboxStatus.SENT, OutboxStatus.DEAD


class SqlOutbox:
    def __init__(self, conn: AsyncConnection, table: Table, *, now: datetime) -> None:
        self._conn, self._t, self._now = conn, table, now

    async def add(self, envelope: Envelope, *, exchange: str) -> None:
        await self._conn.execute(
            insert(self._t).values(
                message_id=str(envelope.message_id),
                exchange=exchange,
                routing_key=envelope.routing_key,
                correlation_id=envelope.correlation_id,
                body=envelope.to_json(),
                order_id=envelope.order_id,
                payment_id=envelope.payment_id,
                status=PENDING,
                attempts=0,
                created_at=self._now,
                next_attempt_at=self._now,
            )
        )

    async def requeue(self, message_id: uuid.UUID) -> bool:
        result = await self._conn.execute(
            update(self._t)
            .where(self._t.c.message_id == str(message_id))
            .values(status=PENDING, next_attempt_at=self._now)
        )
        return bool(result.rowcount)


class SqlInbox:
    def __init__(self, conn: AsyncConnection, table: Table) -> None:
        self._conn, self._t = conn, table

    async def seen(self, message_id: uuid.UUID) -> SeenMessage | None:
        query = select(self._t.c.reply_message_id).where(
            self._t.c.message_id == str(message_id)
        )
        row = (await self._conn.execute(query)).first()
        if row is None:
            return None
        reply = row.reply_message_id
        return SeenMessage(uuid.UUID(reply) if reply else None)

    async def redirect_replies(self, payment_id: str, reply_id: uuid.UUID) -> None:
        await self._conn.execute(
            update(self._t)
            .where(self._t.c.payment_id == payment_id, self._t.c.reply_message_id.is_not(None))
            .values(reply_message_id=str(reply_id))
        )

    async def add(
        self, envelope: Envelope, *, received_at: datetime, reply_id: uuid.UUID | None
    ) -> None:
        await self._conn.execute(
            insert(self._t).values(
                message_id=str(envelope.message_id),
                type=envelope.type.value,
                payment_id=envelope.payment_id,
                received_at=received_at,
                reply_message_id=str(reply_id) if reply_id else None,
            )
        )


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
        await self._conn.execute(
            insert(self._t).values(
                at=at, order_id=order_id, payment_id=payment_id, step=step, detail=detail
            )
        )


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


class SqlOutboxRelayStore:
    """Claims pending rows with a lease: `next_attempt_at` moves past the lease, so a relay
    that dies mid-batch lets its rows fall due again instead of holding them forever."""

    def __init__(self, db: Database, table: Table, dead_letters: Table) -> None:
        self._db, self._t, self._dead = db, table, dead_letters

    async def claim_due(
        self, *, limit: int, now: datetime, lease: timedelta
    ) -> list[OutboundMessage]:
        t = self._t
        due = (
            select(t.c.seq)
            .where(t.c.status == PENDING, t.c.next_attempt_at <= now)
            .order_by(t.c.seq)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL: relays never share a row
        )
        async with self._db.transaction() as conn:
            rows = (
                await conn.execute(
                    update(t)
                    .where(t.c.seq.in_(due.scalar_subquery()))
                    .values(next_attempt_at=now + lease)
                    .returning(
                        t.c.seq, t.c.message_id, t.c.exchange, t.c.routing_key,
                        t.c.correlation_id, t.c.body, t.c.attempts,
                        t.c.order_id, t.c.payment_id, t.c.created_at,
                    )
                )
            ).all()
        return [
            OutboundMessage(
                message_id=uuid.UUID(r.message_id),
                exchange=r.exchange,
                routing_key=r.routing_key,
                correlation_id=r.correlation_id,
                body=r.body,
                attempts=r.attempts,
                order_id=r.order_id,
                payment_id=r.payment_id,
                created_at=r.created_at,
            )
            for r in sorted(rows, key=lambda r: r.seq)
        ]

    async def extend(self, work: Sequence[OutboundMessage], *, until: datetime) -> None:
        t = self._t
        async with self._db.transaction() as conn:
            await conn.execute(
                update(t)
                .where(t.c.message_id.in_([str(m.message_id) for m in work]),
                       t.c.status == PENDING)
                .values(next_attempt_at=until)
            )

    async def mark_sent(self, message_ids: Sequence[uuid.UUID], *, now: datetime) -> None:
        if not message_ids:
            return
        t = self._t
        async with self._db.transaction() as conn:
            await conn.execute(
                update(t)
                .where(t.c.message_id.in_([str(m) for m in message_ids]))
                .values(status=SENT, sent_at=now)
            )

    async def record_failures(
        self, failed: Sequence[FailedTry[OutboundMessage]], *, now: datetime
    ) -> None:
        if not failed:
            return
        t = self._t
        retries = [f for f in failed if f.decision.retry_at is not None]
        dead = [f for f in failed if f.decision.retry_at is None]
        async with self._db.transaction() as conn:
            if retries:
                await conn.execute(
                    update(t)
                    .where(t.c.message_id == bindparam("mid"), t.c.status == PENDING)
                    .values({t.c.attempts: t.c.attempts + 1,
                             t.c.next_attempt_at: bindparam("due"),
                             t.c.last_error: bindparam("error")}),
                    [{"mid": str(f.work.message_id), "due": f.decision.retry_at,
                      "error": f.error[:500]} for f in retries],
                )
            for f in dead:
                await self._dead_letter(conn, f, now)

    async def _dead_letter(
        self, conn: AsyncConnection, failed: FailedTry[OutboundMessage], now: datetime
    ) -> None:
        message, t = failed.work, self._t
        await conn.execute(
            update(t)
            .where(t.c.message_id == str(message.message_id))
            .values(status=DEAD, last_error=failed.error[:500])
        )
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
        query = select(func.count()).select_from(self._t).where(self._t.c.status == PENDING)
        async with self._db.read() as conn:
            return int((await conn.execute(query)).scalar_one())


def _dead_reason(gave_up: str | None) -> str:
    """The reason as `payrelay dlq` shows it; a spent schedule keeps its established words."""
    if gave_up is None or gave_up.startswith("failed:"):
        return "consumer retries exhausted"
    return gave_up
