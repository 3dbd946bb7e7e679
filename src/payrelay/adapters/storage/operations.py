"""The `Operations` port over both databases, and the workers' heartbeats.

`payrelay trace`, `payrelay status`, `payrelay refunds …` and the `/admin` endpoints read
through `SqlOperations`; the queries live in operations_trace.py and operations_status.py.
Releasing or dismissing a held refund is a person's decision, taken at the command or the
endpoint: this adapter only carries it out, the status change and its timeline row in one
transaction, and only from `held`, so a second release (or a race of two) changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update

from payrelay.adapters.resources import AdapterResources
from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database, dialect_insert
from payrelay.adapters.storage.messages import SqlTimeline
from payrelay.adapters.storage.migrations import Schema, ensure_current
from payrelay.adapters.storage.operations_status import pipeline_status
from payrelay.adapters.storage.operations_trace import trace
from payrelay.domain.money import Money
from payrelay.domain.work import RefundStatus
from payrelay.ports import (
    Clock,
    HeldRefund,
    PipelineStatus,
    TimelineEntry,
    Trace,
    UnknownRefund,
)

__all__ = ["SqlHeartbeats", "SqlOperations", "open_operations", "operations_for"]


class SqlHeartbeats:
    """One row per worker process in each database it uses, overwritten at every beat."""

    def __init__(self, payments_db: Database, orders_db: Database | None) -> None:
        self._dbs = {"payments": (payments_db, t.payments_heartbeats)}
        if orders_db is not None:  # a deployment without one beats on the payments side only
            self._dbs["orders"] = (orders_db, t.orders_heartbeats)

    async def beat(
        self, name: str, roles: Sequence[str], *, at: datetime, sides: Collection[str]
    ) -> None:
        row = {"name": name[:200], "roles": ",".join(sorted(roles)), "beat_at": at}
        for db, table in (self._dbs[side] for side in sorted(sides) if side in self._dbs):
            statement = dialect_insert(db, table).values(**row)
            statement = statement.on_conflict_do_update(
                index_elements=[table.c.name],
                set_={"roles": statement.excluded.roles, "beat_at": statement.excluded.beat_at},
            )
            async with db.transaction() as conn:
                await conn.execute(statement)


class SqlOperations:
    def __init__(
        self, *, payments_db: Database, orders_db: Database | None, clock: Clock,
        heartbeat_interval: timedelta,
    ) -> None:
        self._payments, self._orders = payments_db, orders_db
        self._clock = clock
        # A worker is down once it has missed three beats in a row.
        self._down_after = 3 * heartbeat_interval

    async def trace(self, order_or_payment_id: str) -> Trace:
        return await trace(self._payments, self._orders, order_or_payment_id)

    async def status(self) -> PipelineStatus:
        return await pipeline_status(
            self._payments, self._orders, now=self._clock(), down_after=self._down_after
        )

    async def held_refunds(self) -> list[HeldRefund]:
        r = t.refunds
        query = (select(r.c.payment_id, r.c.order_id, r.c.amount_minor, r.c.currency,
                        r.c.reason, r.c.last_error, r.c.updated_at)
                 .where(r.c.status == RefundStatus.HELD).order_by(r.c.updated_at))
        async with self._payments.read() as conn:
            rows = (await conn.execute(query)).all()
        return [
            HeldRefund(refund_id=row.payment_id, order_id=row.order_id,
                       payment_id=row.payment_id,
                       amount=Money.from_minor(row.amount_minor, row.currency),
                       reason=row.reason + (f": {row.last_error}" if row.last_error else ""),
                       held_at=row.updated_at)
            for row in rows
        ]

    async def release_refund(self, refund_id: str) -> None:
        # Back to `requested`, due now, with fresh retry counts: the refunder issues it, and
        # its idempotency key and its check for an earlier refund keep that to one refund.
        await self._leave_held(refund_id, "refund.released", "released by a person",
                               status=RefundStatus.REQUESTED, attempts=0, failures=0)

    async def dismiss_refund(self, refund_id: str, reason: str) -> None:
        reason = " ".join(reason.split())[:400]
        if not reason:
            raise ValueError("a dismissal needs a reason")
        await self._leave_held(refund_id, "refund.dismissed", f"dismissed: {reason}",
                               status=RefundStatus.DISMISSED, last_error=f"dismissed: {reason}")

    async def _leave_held(
        self, refund_id: str, step: str, detail: str, **values: object
    ) -> None:
        r, now = t.refunds, self._clock()
        statement = (
            update(r).where(r.c.payment_id == refund_id, r.c.status == RefundStatus.HELD)
            .values(updated_at=now, next_attempt_at=now, **values)
            .returning(r.c.order_id, r.c.amount_minor, r.c.currency)
        )
        async with self._payments.transaction() as conn:
            row = (await conn.execute(statement)).first()
            if row is None:
                raise UnknownRefund(f"no held refund {refund_id}")
            amount = Money.from_minor(row.amount_minor, row.currency)
            await SqlTimeline(conn, t.payments_timeline).record_many([
                TimelineEntry(step, now, row.order_id, refund_id, f"{amount}; {detail}")
            ])


def operations_for(
    resources: AdapterResources, clock: Clock, interval: float
) -> tuple[SqlOperations, SqlHeartbeats]:
    """A running system's operations and heartbeats (`interval` seconds between beats)."""
    payments_db, orders_db = resources.payments_db, resources.orders_db
    operations = SqlOperations(payments_db=payments_db, orders_db=orders_db, clock=clock,
                               heartbeat_interval=timedelta(seconds=interval))
    return operations, SqlHeartbeats(payments_db, orders_db)


@contextlib.asynccontextmanager
async def open_operations(
    payments_url: str, orders_url: str | None, *, clock: Clock, interval: float
) -> AsyncIterator[SqlOperations]:
    """For one-off commands: the databases (no orders URL: none), at this code's schema."""
    payments_db = Database(payments_url)
    orders_db = None if orders_url is None else Database(orders_url)
    try:
        await ensure_current(payments_db, Schema.PAYMENTS)
        if orders_db is not None:
            await ensure_current(orders_db, Schema.ORDERS)
        yield SqlOperations(payments_db=payments_db, orders_db=orders_db, clock=clock,
                            heartbeat_interval=timedelta(seconds=interval))
    finally:
        await payments_db.dispose()
        if orders_db is not None:
            await orders_db.dispose()
