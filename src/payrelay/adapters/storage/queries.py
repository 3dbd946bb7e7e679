"""Read models over both databases: what the demo report, status pages and tests look at."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.domain.work import NotificationStatus, OutboxStatus, RefundStatus


@dataclass(frozen=True, slots=True)
class PaymentRow:
    payment_id: str
    order_id: str | None
    status: str
    amount_minor: int
    currency: str
    date_approved: datetime | None
    version: int
    order_outcome: str | None
    outcome_reason: str | None


@dataclass(frozen=True, slots=True)
class OrderRow:
    order_id: str
    status: str
    total_minor: int
    currency: str
    paid_by: str | None
    paid_at: datetime | None


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


@dataclass(frozen=True, slots=True)
class PaymentsBacklog:
    notifications_waiting: int
    outbox_pending: int
    outbox_sent: int
    notifications: int


async def payments_backlog(db: Database) -> PaymentsBacklog:
    n, ob = t.notifications, t.payments_outbox
    received, pending_ = NotificationStatus.RECEIVED, OutboxStatus.PENDING
    async with db.read() as conn:
        waiting = await _count(conn, select(func.count()).where(n.c.status == received))
        total = await _count(conn, select(func.count()).select_from(n))
        pending = await _count(conn, select(func.count()).where(ob.c.status == pending_))
        sent = await _count(conn, select(func.count()).where(ob.c.status != pending_))
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
            for table, dead in ((t.notifications, NotificationStatus.DEAD),
                                (t.refunds, RefundStatus.DEAD)):
                count += await _count(conn, select(func.count()).where(table.c.status == dead))
    return count


async def refund_counts(db: Database) -> dict[str, int]:
    r = t.refunds
    query = select(r.c.status, func.count()).group_by(r.c.status)
    async with db.read() as conn:
        return {status: int(n) for status, n in (await conn.execute(query)).all()}


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
