"""The orders database: orders and their lines, what each payment did, outbox and inbox."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.batch_update import EXPECTED, update_batch
from payrelay.adapters.storage.database import Database, chunks, dialect_insert
from payrelay.adapters.storage.messages import (
    SqlDeadLetters,
    SqlInbox,
    SqlOutbox,
    SqlOutboxRelayStore,
    SqlTimeline,
)
from payrelay.domain.errors import ConcurrentUpdate
from payrelay.domain.events import EventType, RejectionReason
from payrelay.domain.money import Money
from payrelay.domain.order import Order, OrderStatus, Outcome, PaymentRecord
from payrelay.domain.payment import PaymentStatus
from payrelay.ports import Clock, Inbox, OrderLine, OrderUpdate


class SqlOrders:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None:
        return (await self.get_many([order_id], for_update=for_update)).get(order_id)

    async def get_many(
        self, order_ids: Sequence[str], *, for_update: bool = False
    ) -> Mapping[str, Order]:
        found: dict[str, Order] = {}
        for chunk in chunks(sorted(set(order_ids))):
            query = select(t.orders).where(t.orders.c.order_id.in_(chunk))
            if for_update:
                query = query.order_by(t.orders.c.order_id).with_for_update()
            for row in await self._conn.execute(query):
                found[row.order_id] = _order(row)
        return found

    async def add(
        self, order: Order, lines: Sequence[OrderLine], *, description: str, now: datetime
    ) -> None:
        await self._conn.execute(
            insert(t.orders).values(
                order_id=order.order_id,
                status=order.status.value,
                total_minor=order.total.minor_units,
                currency=order.total.currency,
                description=description,
                paid_by=order.paid_by,
                version=order.version,
                review_reason=order.review_reason.value if order.review_reason else None,
                created_at=now,
                updated_at=now,
            )
        )
        if lines:
            await self._conn.execute(
                insert(t.order_items),
                [
                    {
                        "order_id": order.order_id,
                        "line": i,
                        "sku": line.sku,
                        "quantity": line.quantity,
                        "unit_price_minor": line.unit_price.minor_units,
                    }
                    for i, line in enumerate(lines, start=1)
                ],
            )

    async def save(self, order: Order, *, expected_version: int, now: datetime) -> None:
        await self.save_many([OrderUpdate(order, expected_version)], now=now)

    async def save_many(self, updates: Sequence[OrderUpdate], *, now: datetime) -> None:
        # Optimistic check against the version the caller read, not `order.version - 1`:
        # one event may move an order several steps (a refund seen first: paid, refunded).
        if not updates:
            return
        o = t.orders
        rows = [
            {"order_id": u.order.order_id, EXPECTED: u.expected_version,
             "status": u.order.status.value, "paid_by": u.order.paid_by,
             "version": u.order.version,
             "review_reason": u.order.review_reason.value if u.order.review_reason else None,
             "paid_at": now if u.order.status is OrderStatus.PAID else None}
            for u in sorted(updates, key=lambda u: u.order.order_id)  # the lock order
        ]
        written = len(await update_batch(self._conn, o, rows, key="order_id", values=lambda b: {
            "status": b.status, "paid_by": b.paid_by, "version": b.version,
            "review_reason": b.review_reason, "updated_at": now,
            "paid_at": func.coalesce(b.paid_at, o.c.paid_at),  # set when it becomes paid
        }))
        if written != len(updates):
            stale = ", ".join(u.order.order_id for u in updates[:5])
            raise ConcurrentUpdate(
                f"{len(updates) - written} of the orders {stale}… moved past the version read"
            )

    async def unpaid_since(self, cutoff: datetime, *, limit: int) -> list[str]:
        o = t.orders
        query = (
            select(o.c.order_id)
            .where(o.c.status == OrderStatus.PENDING_PAYMENT.value, o.c.created_at < cutoff)
            .order_by(o.c.created_at)
            .limit(limit)
        )
        return list((await self._conn.execute(query)).scalars())

    async def get_payment(self, payment_id: str) -> PaymentRecord | None:
        return (await self.get_payments([payment_id])).get(payment_id)

    async def get_payments(self, payment_ids: Sequence[str]) -> Mapping[str, PaymentRecord]:
        op = t.order_payments
        found: dict[str, PaymentRecord] = {}
        for chunk in chunks(sorted(set(payment_ids))):
            for row in await self._conn.execute(select(op).where(op.c.payment_id.in_(chunk))):
                found[row.payment_id] = _payment_record(row)
        return found

    async def save_payment(self, record: PaymentRecord) -> None:
        await self.save_payments([record])

    async def save_payments(self, records: Sequence[PaymentRecord]) -> None:
        if not records:
            return
        op = t.order_payments
        statement = dialect_insert(self._conn, op)
        columns = ("order_id", "last_version", "last_status", "outcome", "outcome_reason",
                   "approved_at")
        # A list of parameters: compiled once whatever the batch's size.
        await self._conn.execute(statement.on_conflict_do_update(
            index_elements=[op.c.payment_id],
            set_={c: statement.excluded[c] for c in columns},
        ), [
            {
                "payment_id": r.payment_id,
                "order_id": r.order_id,
                "last_version": r.last_version,
                "last_status": r.last_status.value,
                "outcome": r.outcome.type.value if r.outcome else None,
                "outcome_reason": (
                    r.outcome.reason.value if r.outcome and r.outcome.reason else None
                ),
                "approved_at": r.approved_at,
            }
            for r in records
        ])


def _order(row: Row[Any]) -> Order:
    return Order(
        order_id=row.order_id,
        status=OrderStatus(row.status),
        total=Money.from_minor(row.total_minor, row.currency),
        paid_by=row.paid_by,
        version=row.version,
        review_reason=RejectionReason(row.review_reason) if row.review_reason else None,
    )


def _payment_record(row: Row[Any]) -> PaymentRecord:
    outcome = None
    if row.outcome is not None:
        reason = RejectionReason(row.outcome_reason) if row.outcome_reason else None
        outcome = Outcome(EventType(row.outcome), reason)
    return PaymentRecord(
        payment_id=row.payment_id,
        order_id=row.order_id,
        last_version=row.last_version,
        last_status=PaymentStatus(row.last_status),
        outcome=outcome,
        approved_at=row.approved_at,
    )


class SqlOrdersTx:
    def __init__(self, conn: AsyncConnection, now: datetime) -> None:
        self.conn = conn
        self.orders = SqlOrders(conn)
        self.outbox = SqlOutbox(conn, t.orders_outbox, now=now)
        self.inbox: Inbox = SqlInbox(conn, t.orders_inbox)
        self.timeline = SqlTimeline(conn, t.orders_timeline)
        self.dead_letters = SqlDeadLetters(conn, t.orders_dead_letters)


class SqlOrdersUnitOfWork:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self._clock = clock
        self.relay_store = SqlOutboxRelayStore(
            db, t.orders_outbox, t.orders_dead_letters, t.orders_timeline
        )

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[SqlOrdersTx]:
        async with self.db.transaction() as conn:
            yield SqlOrdersTx(conn, self._clock())
