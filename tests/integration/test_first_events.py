"""Whatever status a payment is first seen in, the order consumer reaches the final state.

The envelopes go through the real order consumer and the real SQL unit of work, on SQLite
and PostgreSQL. A payment first seen `refunded` or `charged_back` moves its order two
versions in one event (paid, then refunded); its save is checked against the version read,
so it commits instead of failing on every redelivery until it is dead-lettered.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.migrations import Schema, upgrade
from payrelay.adapters.storage.orders import SqlOrdersUnitOfWork
from payrelay.domain.events import Envelope, EventType, RejectionReason
from payrelay.domain.money import AmountProblem, InexactAmount, Money
from payrelay.domain.order import Order, OrderStatus
from payrelay.domain.payment import PaymentStatus
from payrelay.faults import Faults
from payrelay.ports import Delivery, OrderLine
from payrelay.services.consume import PaymentEventConsumer
from tests.support import fresh_postgres_databases

AT = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
TOTAL = Money.parse("19.90", "BRL")
PS, OS = PaymentStatus, OrderStatus

# Written out independently of src: (final order status, the outcome sent back).
FINAL: dict[PaymentStatus, tuple[OrderStatus, str | None]] = {
    PS.APPROVED: (OS.PAID, "order.payment_applied"),
    PS.PENDING: (OS.PENDING_PAYMENT, None),
    PS.IN_PROCESS: (OS.PENDING_PAYMENT, None),
    PS.AUTHORIZED: (OS.PENDING_PAYMENT, None),
    PS.REJECTED: (OS.PENDING_PAYMENT, None),
    PS.CANCELLED: (OS.PENDING_PAYMENT, None),
    PS.REFUNDED: (OS.REFUNDED, "order.payment_applied"),
    PS.CHARGED_BACK: (OS.REFUNDED, "order.payment_applied"),
    PS.IN_MEDIATION: (OS.PAID, "order.payment_applied"),
}


def now() -> datetime:
    return AT


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def orders_uow(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[SqlOrdersUnitOfWork]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "postgres":
            (url,) = await stack.enter_async_context(fresh_postgres_databases(1))
        else:
            url = f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}"
        db = Database(url)
        stack.push_async_callback(db.dispose)
        await upgrade(db, Schema.ORDERS)
        uow = SqlOrdersUnitOfWork(db, now)
        async with uow.begin() as tx:
            order = Order("order-1", OS.PENDING_PAYMENT, TOTAL)
            await tx.orders.add(order, [OrderLine("sku", 1, TOTAL)], description="", now=AT)
        yield uow


def first_event(status: PaymentStatus, **changes: object) -> Delivery:
    envelope = Envelope(
        type=EventType.for_payment_status(status),
        occurred_at=AT,
        order_id="order-1",
        payment_id="1000000001",
        provider="mercadopago",
        amount=TOTAL,
        payment_version=1,
        correlation_id="mercadopago:1000000001",
        approved_at=AT if FINAL[status][1] else None,  # was approved at some point
        **changes,  # type: ignore[arg-type]
    )
    return Delivery(str(envelope.message_id), envelope.routing_key, envelope.to_json())


async def replies(uow: SqlOrdersUnitOfWork) -> list[dict[str, object]]:
    async with uow.db.read() as conn:
        bodies = (await conn.execute(select(t.orders_outbox.c.body))).scalars().all()
    return [json.loads(body) for body in bodies]


async def dead_letters(uow: SqlOrdersUnitOfWork) -> int:
    async with uow.db.read() as conn:
        return len((await conn.execute(select(t.orders_dead_letters))).all())


def test_every_status_is_covered() -> None:
    assert set(FINAL) == set(PaymentStatus)


@pytest.mark.parametrize("status", list(FINAL), ids=[s.value for s in FINAL])
async def test_the_first_event_of_any_status_reaches_the_final_state(
    orders_uow: SqlOrdersUnitOfWork, status: PaymentStatus
):
    final, outcome = FINAL[status]
    consumer = PaymentEventConsumer(uow=orders_uow, clock=now, faults=Faults())
    await consumer.handle([first_event(status)])  # raises nothing: committed
    async with orders_uow.begin() as tx:
        order = await tx.orders.get("order-1")
        record = await tx.orders.get_payment("1000000001")
    assert order is not None and order.status is final
    assert order.version == 1 + {OS.PENDING_PAYMENT: 0, OS.PAID: 1, OS.REFUNDED: 2}[final]
    assert record is not None and record.last_status is status
    assert [r["type"] for r in await replies(orders_uow)] == ([outcome] if outcome else [])
    assert consumer.stats.dead_lettered == 0 and await dead_letters(orders_uow) == 0


async def test_an_inexact_amount_holds_the_order_for_review_with_its_reason(
    orders_uow: SqlOrdersUnitOfWork,
):
    inexact = InexactAmount("19.905", AmountProblem.PRECISION)
    consumer = PaymentEventConsumer(uow=orders_uow, clock=now, faults=Faults())
    await consumer.handle([first_event(PS.APPROVED, inexact_amount=inexact)])
    async with orders_uow.begin() as tx:
        order = await tx.orders.get("order-1")
    assert order is not None
    assert (order.status, order.review_reason) == (
        OS.NEEDS_REVIEW, RejectionReason.AMOUNT_PRECISION
    )
    (reply,) = await replies(orders_uow)
    assert (reply["type"], reply["reason"]) == ("order.payment_rejected", "amount_precision")
    assert (reply["schema_version"], reply["amount_written"]) == (2, "19.905")
