"""The orders database: orders and their lines, what each payment did, outbox and inbox."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
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
from payrelay.ports import Clock, Inbox, OrderLine


class SqlOrders:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None:
        query = select(t.orders).where(t.orders.c.order_id == order_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._conn.execute(query)).first()
        if row is None:
            return None
        return Order(
            order_id=row.order_id,
            status=OrderStatus(row.status),
            total=Money.from_minor(row.total_minor, row.currency),
            paid_by=row.paid_by,
            version=row.version,
            review_reason=RejectionReason(row.review_reason) if row.review_reason else None,
        )

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
        o = t.orders
        values: dict[str, Any] = {
            "status": order.status.value,
            "paid_by": order.paid_by,
            "version": order.version,
            "review_reason": order.review_reason.value if order.review_reason else None,
            "updated_at": now,
        }
        if order.status is OrderStatus.PAID:
            values["paid_at"] = now
        # Optimistic check against the version the caller read, not `order.version - 1`:
        # one event may move an order several steps (a refund seen first: paid, refunded).
        result = await self._conn.execute(
            update(o)
            .where(o.c.order_id == order.order_id, o.c.version == expected_version)
            .values(**values)
        )
        if result.rowcount != 1:
            raise ConcurrentUpdate(
                f"order {order.order_id} is no longer at version {expected_version}"
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
        op = t.order_payments
        row = (await self._conn.execute(select(op).where(op.c.payment_id == payment_id))).first()
        if row is None:
            return None
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

    async def save_payment(self, record: PaymentRecord) -> None:
        op = t.order_payments
        values = {
            "order_id": record.order_id,
            "last_version": record.last_version,
            "last_status": record.last_status.value,
            "outcome": record.outcome.type.value if record.outcome else None,
            "outcome_reason": (
                record.outcome.reason.value if record.outcome and record.outcome.reason else None
            ),
            "approved_at": record.approved_at,
        }
        result = await self._conn.execute(
            update(op).where(op.c.payment_id == record.payment_id).values(**values)
        )
        if not result.rowcount:
            await self._conn.execute(insert(op).values(payment_id=record.payment_id, **values))


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
        self.relay_store = SqlOutboxRelayStore(db, t.orders_outbox, t.orders_dead_letters)

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[SqlOrdersTx]:
        async with self.db.transaction() as conn:
            yield SqlOrdersTx(conn, self._clock())
