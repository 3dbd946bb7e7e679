"""`payrelay trace <order id | payment id>`: everything both databases recorded, joined.

What the payments side knows by payment id is joined to its order through the payments
row (the gateway's word) and, for a payment the gateway never returned, through the order
hint its notifications carried (`notifications.order_hint`, unsigned: used only when no
payments row names the payment's order). Both timelines are then read by order id and by
payment id and merged in time order.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Select, Table, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.ports import Trace, TraceStep

MAX_STEPS = 5000
"""The most timeline rows one trace reads from each database (newest kept)."""


async def trace(payments_db: Database, orders_db: Database | None, query: str) -> Trace:
    """`orders_db` None: a deployment without an orders database; its side is not read."""
    async with payments_db.read() as conn:
        order_ids, payment_ids = await _payments_side_ids(conn, query)
    if orders_db is not None:
        async with orders_db.read() as conn:
            order_ids |= await _orders_side_ids(conn, query, payment_ids)
    async with payments_db.read() as conn:
        payment_ids |= await _payments_of(conn, order_ids)
        steps = await _steps(conn, "payments", t.payments_timeline, order_ids, payment_ids)
    if orders_db is not None:
        async with orders_db.read() as conn:
            steps += await _steps(conn, "orders", t.orders_timeline, order_ids, payment_ids)
    steps.sort(key=lambda s: s.at)
    return Trace(query=query, order_ids=tuple(sorted(order_ids - {""})),
                 payment_ids=tuple(sorted(payment_ids)), steps=tuple(steps))


async def _payments_side_ids(conn: AsyncConnection, query: str) -> tuple[set[str], set[str]]:
    """The order ids and payment ids `query` names on the payments side."""
    p, n, c, tl = t.payments, t.notifications, t.checkouts, t.payments_timeline
    order_ids: set[str] = set()
    payment_ids: set[str] = set()
    if await _exists(conn, c.c.order_id, query) or await _exists(conn, tl.c.order_id, query):
        order_ids.add(query)
    if (await _exists(conn, p.c.payment_id, query)
            or await _exists(conn, n.c.resource_id, query)
            or await _exists(conn, tl.c.payment_id, query)):
        payment_ids.add(query)
    order_ids |= await _column(conn, select(p.c.order_id).where(
        p.c.payment_id.in_(payment_ids), p.c.order_id.is_not(None)))
    order_ids |= await _hinted_orders(conn, payment_ids)
    order_ids |= await _column(conn, select(tl.c.order_id).where(
        tl.c.payment_id.in_(payment_ids), tl.c.order_id.is_not(None)))
    return order_ids, payment_ids


async def _orders_side_ids(
    conn: AsyncConnection, query: str, payment_ids: set[str]
) -> set[str]:
    """The order ids the orders side knows `query` or these payments by."""
    o, tl = t.orders, t.orders_timeline
    found = await _column(conn, select(tl.c.order_id).where(tl.c.payment_id.in_(payment_ids)))
    if await _exists(conn, o.c.order_id, query) or await _exists(conn, tl.c.order_id, query):
        found.add(query)
    return found


async def _hinted_orders(conn: AsyncConnection, payment_ids: set[str]) -> set[str]:
    """The order hints of payments no payments row places in an order."""
    p, n = t.payments, t.notifications
    placed = await _column(conn, select(p.c.payment_id).where(
        p.c.payment_id.in_(payment_ids), p.c.order_id.is_not(None)))
    return await _column(conn, select(n.c.order_hint).where(
        n.c.resource_id.in_(payment_ids - placed), n.c.order_hint.is_not(None)))


async def _payments_of(conn: AsyncConnection, order_ids: set[str]) -> set[str]:
    """Every payment an order has: by the gateway's word, by timeline, or by hint alone."""
    p, n, r, tl = t.payments, t.notifications, t.refunds, t.payments_timeline
    found = await _column(conn, select(p.c.payment_id).where(p.c.order_id.in_(order_ids)))
    found |= await _column(conn, select(r.c.payment_id).where(r.c.order_id.in_(order_ids)))
    found |= await _column(conn, select(tl.c.payment_id).where(
        tl.c.order_id.in_(order_ids), tl.c.payment_id.is_not(None)))
    hinted = await _column(conn, select(n.c.resource_id).where(
        n.c.order_hint.in_(order_ids), n.c.resource_id.is_not(None)))
    placed_elsewhere = await _column(conn, select(p.c.payment_id).where(
        p.c.payment_id.in_(hinted), p.c.order_id.is_not(None),
        p.c.order_id.not_in(order_ids)))
    return found | (hinted - placed_elsewhere)


async def _steps(
    conn: AsyncConnection, side: str, table: Table, order_ids: set[str],
    payment_ids: set[str],
) -> list[TraceStep]:
    if not order_ids and not payment_ids:
        return []
    query = (
        select(table.c.at, table.c.step, table.c.order_id, table.c.payment_id,
               table.c.detail)
        .where(or_(table.c.order_id.in_(order_ids), table.c.payment_id.in_(payment_ids)))
        .order_by(table.c.seq.desc()).limit(MAX_STEPS)
    )
    rows = (await conn.execute(query)).all()
    return [  # oldest first, so the merge keeps each side's order within one instant
        TraceStep(at=row.at, side=side, kind=row.step, order_id=row.order_id,
                  payment_id=row.payment_id, detail=row.detail or "")
        for row in reversed(rows)
    ]


async def _exists(conn: AsyncConnection, column: Column[str], value: str) -> bool:
    query = select(column).where(column == value).limit(1)
    return (await conn.execute(query)).first() is not None


async def _column(conn: AsyncConnection, query: Select[Any]) -> set[str]:
    return {str(v) for v in (await conn.execute(query)).scalars() if v is not None}
