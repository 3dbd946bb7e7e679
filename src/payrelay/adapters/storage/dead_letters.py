"""Dead letters of both databases, as one box: list, show, replay, purge.

A replay puts the message back in its database's outbox under its own message id, so the
relay publishes it again and the consumer's inbox makes a second application impossible:
replaying a message whose effect already happened changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.engine import Row

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.dead_work import NOTIFICATION, REFUND, SqlDeadWork
from payrelay.adapters.storage.migrations import Schema, ensure_current
from payrelay.domain.errors import Conflict, NotFound
from payrelay.domain.work import OutboxStatus
from payrelay.ports import Clock, DeadLetter


class SqlDeadLetterBox:
    def __init__(self, *, payments: Database, orders: Database | None, clock: Clock) -> None:
        """`orders` None: a deployment without an orders database has only payments' own."""
        self._sides: dict[str, tuple[Database, Table, Table]] = {
            "payments": (payments, t.payments_dead_letters, t.payments_outbox),
        }
        if orders is not None:
            self._sides["orders"] = (orders, t.orders_dead_letters, t.orders_outbox)
        self._clock = clock
        self._work = SqlDeadWork(payments)

    async def recent(self, *, limit: int = 100) -> list[DeadLetter]:
        found: list[DeadLetter] = await self._work.recent(limit=limit)
        for side, (db, table, _) in self._sides.items():
            query = select(table).order_by(table.c.id.desc()).limit(limit)
            async with db.read() as conn:
                found += [_letter(side, row) for row in (await conn.execute(query)).all()]
        return sorted(found, key=lambda d: d.dead_at, reverse=True)[:limit]

    async def get(self, dead_letter_id: str) -> DeadLetter | None:
        kind, _, key = dead_letter_id.partition("-")
        if kind in (NOTIFICATION, REFUND):
            return await self._work.get(kind, self._key(kind, key))
        side, row_id = self._address(dead_letter_id)
        db, table, _ = self._sides[side]
        async with db.read() as conn:
            row = (await conn.execute(select(table).where(table.c.id == row_id))).first()
        return None if row is None else _letter(side, row)

    async def replay(self, dead_letter_ids: Sequence[str] | None) -> list[str]:
        ids = [d.id for d in await self.recent(limit=10_000)] if dead_letter_ids is None \
            else list(dead_letter_ids)
        replayed = []
        for dead_letter_id in ids:
            await self._replay_one(dead_letter_id)
            replayed.append(dead_letter_id)
        return replayed

    async def purge(self, dead_letter_ids: Sequence[str]) -> list[str]:
        purged = []
        for dead_letter_id in dead_letter_ids:
            kind, _, key = dead_letter_id.partition("-")
            if kind in (NOTIFICATION, REFUND):
                if await self._work.purge(kind, self._key(kind, key)):
                    purged.append(dead_letter_id)
                continue
            side, row_id = self._address(dead_letter_id)
            db, table, _ = self._sides[side]
            async with db.transaction() as conn:
                result = await conn.execute(delete(table).where(table.c.id == row_id))
            if result.rowcount:
                purged.append(dead_letter_id)
        return purged

    async def _replay_one(self, dead_letter_id: str) -> None:
        kind, _, key = dead_letter_id.partition("-")
        if kind in (NOTIFICATION, REFUND):
            await self._work.replay(kind, self._key(kind, key), now=self._clock())
            return
        side, row_id = self._address(dead_letter_id)
        db, table, outbox = self._sides[side]
        now = self._clock()
        async with db.transaction() as conn:
            row = (await conn.execute(select(table).where(table.c.id == row_id))).first()
            if row is None:
                raise NotFound(f"no dead letter {dead_letter_id}")
            if not row.exchange or not row.routing_key or not row.message_id:
                raise Conflict(f"dead letter {dead_letter_id} has no address to replay to")
            again = {"status": OutboxStatus.PENDING, "next_attempt_at": now, "attempts": 0}
            result = await conn.execute(
                update(outbox).where(outbox.c.message_id == row.message_id).values(**again)
            )
            if not result.rowcount:
                await conn.execute(
                    insert(outbox).values(
                        message_id=row.message_id, exchange=row.exchange,
                        routing_key=row.routing_key, correlation_id=f"replay:{row.message_id}",
                        body=row.body, created_at=now, **again,
                    )
                )
            await conn.execute(delete(table).where(table.c.id == row_id))

    @staticmethod
    def _key(kind: str, key: str) -> str:
        if not key or (kind == NOTIFICATION and not key.isdigit()):
            raise NotFound(f"no dead {kind} {key!r} (ids look like {kind}-12)")
        return key

    def _address(self, dead_letter_id: str) -> tuple[str, int]:
        side, _, number = dead_letter_id.partition("-")
        if side not in self._sides or not number.isdigit():
            raise NotFound(f"no dead letter {dead_letter_id!r} (ids look like payments-12)")
        return side, int(number)


@contextlib.asynccontextmanager
async def open_dead_letter_box(
    *, payments_url: str, orders_url: str | None, clock: Clock
) -> AsyncIterator[SqlDeadLetterBox]:
    """Both databases' dead letters (or the payments one's alone, without an orders URL),
    once each is checked to be at this code's schema (for one-off commands); the engines
    are disposed of afterwards."""
    payments = Database(payments_url)
    orders = None if orders_url is None else Database(orders_url)
    try:
        await ensure_current(payments, Schema.PAYMENTS)
        if orders is not None:
            await ensure_current(orders, Schema.ORDERS)
        yield SqlDeadLetterBox(payments=payments, orders=orders, clock=clock)
    finally:
        await payments.dispose()
        if orders is not None:
            await orders.dispose()


def _letter(side: str, row: Row[Any]) -> DeadLetter:
    dead_at: datetime = row.dead_at
    return DeadLetter(
        id=f"{side}-{row.id}",
        message_id=row.message_id,
        exchange=row.exchange,
        routing_key=row.routing_key,
        queue=row.queue,
        reason=row.reason,
        error=row.error,
        attempts=row.attempts,
        dead_at=dead_at,
        body=row.body,
    )
