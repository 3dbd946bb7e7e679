"""Read models over both databases: what the demo report, status pages and tests look at.

`SqlPaymentsReadModel` and `SqlOrdersReadModel` implement the read-model ports over the
functions below, which tests call directly with a `Database`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.migrations import Schema, ensure_current
from payrelay.domain.work import NotificationStatus, OutboxStatus, RefundStatus
from payrelay.ports import OrderRow, PaymentRow, PaymentsBacklog

__all__ = [
    "OrderRow",
    "PaymentRow",
    "PaymentsBacklog",
    "SqlOrdersReadModel",
    "SqlPaymentsReadModel",
    "TimelineEntry",
    "checkout_reconciled",
    "dead_letter_count",
    "order_rows",
    "order_timeline",
    "outbox_pending",
    "payment_rows",
    "payments_backlog",
    "reconciler_fixes",
    "refund_counts",
    "retries",
]


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    side: str  # payments | orders
    step: str
    payment_id: str | None
    detail: str | None


async def payment_rows(db: Database) -> list[PaymentRow]:
    p = t.payments
    query = select(
        p.c.payment_id, p.c.order_id, p.c.status, p.c.amount_minor, p.c.currency,
        p.c.date_approved, p.c.version, p.c.order_outcome, p.c.outcome_reason,
    )
    async with db.read() as conn:
        return [PaymentRow(*row) for row in (await conn.execute(query)).all()]


async def order_rows(db: Database) -> list[OrderRow]:
    o = t.orders
    query = select(
        o.c.order_id, o.c.status, o.c.total_minor, o.c.currency, o.c.paid_by, o.c.paid_at
    )
    async with db.read() as conn:
        return [OrderRow(*row) for row in (await conn.execute(query)).all()]


async def payments_backlog(db: Database) -> PaymentsBacklog:
    n, ob = t.notifications, t.payments_outbox
    received, unsent = NotificationStatus.RECEIVED, OutboxStatus.PENDING
    async with db.read() as conn:
        waiting = await _count(conn, select(func.count()).where(n.c.status == received))
        total = await _count(conn, select(func.count()).select_from(n))
        pending = await _count(conn, select(func.count()).where(ob.c.status == unsent))
        sent = await _count(conn, select(func.count()).where(ob.c.status != unsent))
    return PaymentsBacklog(waiting, pending, sent, total)


async def outbox_pending(db: Database, *, orders_side: bool) -> int:
    ob = t.orders_outbox if orders_side else t.payments_outbox
    async with db.read() as conn:
        return await _count(conn, select(func.count()).where(ob.c.status == OutboxStatus.PENDING))


async def dead_letter_count(db: Database, *, orders_side: bool) -> int:
    """Dead messages, and on the payments side dead notifications and refunds too."""
    dl = t.orders_dead_letters if orders_side else t.payments_dead_letters
    async with db.read() as conn:
        count = await _count(conn, select(func.count()).select_from(dl))
        if not orders_side:
            for status, table in (
                (NotificationStatus.DEAD, t.notifications), (RefundStatus.DEAD, t.refunds)
            ):
                count += await _count(conn, select(func.count()).where(table.c.status == status))
    return count


async def refund_counts(db: Database) -> dict[RefundStatus, int]:
    r = t.refunds
    query = select(r.c.status, func.count()).group_by(r.c.status)
    async with db.read() as conn:
        return {RefundStatus(status): int(n) for status, n in (await conn.execute(query)).all()}


async def retries(db: Database, *, orders_side: bool) -> int:
    """How many retries the stored work needed: failed attempts that were tried again."""
    tables = [t.orders_outbox] if orders_side else [t.payments_outbox, t.notifications, t.refunds]
    total = 0
    async with db.read() as conn:
        for table in tables:
            query = select(func.coalesce(func.sum(table.c.attempts), 0))
            total += int((await conn.execute(query)).scalar_one())
    return total


async def reconciler_fixes(db: Database) -> int:
    query = select(t.reconciliation_runs.c.report)
    async with db.read() as conn:
        reports = [json.loads(r) for r in (await conn.execute(query)).scalars()]
    keys = ("resent_approvals", "lost_payments_found", "unsettled_refetched")
    return sum(len(report[key]) for report in reports for key in keys)


async def checkout_reconciled(db: Database, order_id: str) -> bool:
    """Whether the reconciler has searched the gateway for this order's checkout."""
    c = t.checkouts
    query = select(c.c.reconciled_at).where(c.c.order_id == order_id)
    async with db.read() as conn:
        return (await conn.execute(query)).scalar_one_or_none() is not None


async def order_timeline(
    payments_db: Database, orders_db: Database, order_id: str
) -> list[TimelineEntry]:
    """Every recorded step of an order's payments, from both sides, in time order."""
    entries: list[TimelineEntry] = []
    for side, db, table in (
        ("payments", payments_db, t.payments_timeline),
        ("orders", orders_db, t.orders_timeline),
    ):
        query = select(table.c.at, table.c.step, table.c.payment_id, table.c.detail).where(
            table.c.order_id == order_id
        )
        async with db.read() as conn:
            for at, step, payment_id, detail in (await conn.execute(query)).all():
                entries.append(TimelineEntry(at, side, step, payment_id, detail))
    return sorted(entries, key=lambda e: e.at)


async def _count(conn: AsyncConnection, query: Select[int]) -> int:
    return int((await conn.execute(query)).scalar_one())


async def schema_ready(db: Database, schema: Schema) -> None:
    """Return if the database answers and is at this code's schema (for `/readyz`)."""
    async with db.read() as conn:
        await conn.execute(text("SELECT 1"))
    await ensure_current(db, schema)


class SqlPaymentsReadModel:
    """The `PaymentsReadModel` port over the payments database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def check(self) -> None:
        await schema_ready(self._db, Schema.PAYMENTS)

    async def payment_rows(self) -> list[PaymentRow]:
        return await payment_rows(self._db)

    async def backlog(self) -> PaymentsBacklog:
        return await payments_backlog(self._db)

    async def refund_counts(self) -> dict[RefundStatus, int]:
        return await refund_counts(self._db)

    async def retries(self) -> int:
        return await retries(self._db, orders_side=False)

    async def dead_letter_count(self) -> int:
        return await dead_letter_count(self._db, orders_side=False)

    async def reconciler_fixes(self) -> int:
        return await reconciler_fixes(self._db)

    async def checkout_reconciled(self, order_id: str) -> bool:
        return await checkout_reconciled(self._db, order_id)


class SqlOrdersReadModel:
    """The `OrdersReadModel` port over the orders database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def check(self) -> None:
        await schema_ready(self._db, Schema.ORDERS)

    async def order_rows(self) -> list[OrderRow]:
        return await order_rows(self._db)

    async def outbox_pending(self) -> int:
        return await outbox_pending(self._db, orders_side=True)

    async def retries(self) -> int:
        return await retries(self._db, orders_side=True)

    async def dead_letter_count(self) -> int:
        return await dead_letter_count(self._db, orders_side=True)
