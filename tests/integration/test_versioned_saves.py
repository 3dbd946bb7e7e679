"""The version rule of both `save`s, on every backend: compare with the version read.

`Payments.save` is one upsert, so two transactions that both found no payment never meet
an IntegrityError: the loser gets ConcurrentUpdate and writes nothing. `Orders.save` takes
the version the caller loaded, so an event that moves an order two steps is written.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.migrations import Schema, upgrade
from payrelay.adapters.storage.orders import SqlOrdersUnitOfWork
from payrelay.adapters.storage.payments import SqlPaymentsUnitOfWork
from payrelay.domain.errors import ConcurrentUpdate
from payrelay.domain.events import RejectionReason
from payrelay.domain.money import AmountProblem, InexactAmount, Money
from payrelay.domain.order import Order, OrderStatus
from payrelay.domain.payment import Payment, PaymentSnapshot, PaymentStatus
from payrelay.ports import OrderLine
from tests.support import fresh_postgres_databases

AT = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
TEN = Money.parse("10.00", "BRL")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
DbFactory = Callable[[Schema], contextlib.AbstractAsyncContextManager[Database]]


def now() -> datetime:
    return AT


@pytest.fixture(params=BACKENDS)
def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> DbFactory:
    """`async with migrated(Schema.PAYMENTS) as db:` a fresh database at head."""

    @contextlib.asynccontextmanager
    async def make(schema: Schema) -> AsyncIterator[Database]:
        async with contextlib.AsyncExitStack() as stack:
            if request.param == "postgres":
                (url,) = await stack.enter_async_context(fresh_postgres_databases(1))
            else:
                url = f"sqlite+aiosqlite:///{tmp_path / f'{schema.value}.db'}"
            db = Database(url)
            stack.push_async_callback(db.dispose)
            await upgrade(db, schema)
            yield db

    return make


def snapshot(
    status: PaymentStatus = PaymentStatus.APPROVED,
    *,
    payment_id: str = "1000000001",
    amount: Money = TEN,
    inexact: InexactAmount | None = None,
    updated: datetime = AT,
) -> PaymentSnapshot:
    return PaymentSnapshot(
        payment_id=payment_id,
        provider="mercadopago",
        order_id="order-1",
        status=status,
        status_detail="accredited",
        amount=amount,
        amount_refunded=Money.parse("0", amount.currency),
        date_created=AT,
        date_approved=AT,
        date_last_updated=updated,
        inexact_amount=inexact,
    )


async def payment_rows(db: Database) -> list[tuple[str, int, str]]:
    async with db.read() as conn:
        query = select(t.payments.c.payment_id, t.payments.c.version, t.payments.c.status)
        return [(r.payment_id, r.version, r.status) for r in await conn.execute(query)]


# --- Payments.save -----------------------------------------------------------------------


async def test_a_payment_is_inserted_then_updated_from_the_version_read(migrated: DbFactory):
    async with migrated(Schema.PAYMENTS) as db:
        uow = SqlPaymentsUnitOfWork(db, now)
        async with uow.begin() as tx:
            assert await tx.payments.get("1000000001") is None
            await tx.payments.save(Payment(snapshot(), 1), expected_version=None, now=AT)
        later = snapshot(PaymentStatus.REFUNDED, updated=AT + timedelta(minutes=1))
        async with uow.begin() as tx:
            current = await tx.payments.get("1000000001")
            assert current is not None and current.version == 1
            await tx.payments.save(Payment(later, 2), expected_version=1, now=AT)
        async with uow.begin() as tx:
            assert await tx.payments.get("1000000001") == Payment(later, 2)
        assert await payment_rows(db) == [("1000000001", 2, "refunded")]


@pytest.mark.parametrize("expected", [None, 2], ids=["believed-new", "stale-version"])
async def test_a_save_over_a_version_not_read_raises_and_writes_nothing(
    migrated: DbFactory, expected: int | None
):
    async with migrated(Schema.PAYMENTS) as db:
        uow = SqlPaymentsUnitOfWork(db, now)
        async with uow.begin() as tx:
            await tx.payments.save(Payment(snapshot(), 1), expected_version=None, now=AT)
        other = snapshot(PaymentStatus.CHARGED_BACK, updated=AT + timedelta(minutes=1))
        async with uow.begin() as tx:
            with pytest.raises(ConcurrentUpdate, match="1000000001"):
                await tx.payments.save(Payment(other, 3), expected_version=expected, now=AT)
        assert await payment_rows(db) == [("1000000001", 1, "approved")]


async def test_a_refresh_keeps_its_version_and_is_checked_against_it(migrated: DbFactory):
    async with migrated(Schema.PAYMENTS) as db:
        uow = SqlPaymentsUnitOfWork(db, now)
        async with uow.begin() as tx:
            await tx.payments.save(Payment(snapshot(), 1), expected_version=None, now=AT)
        async with uow.begin() as tx:  # same status, newer detail: same version
            await tx.payments.save(Payment(snapshot(updated=AT + timedelta(seconds=5)), 1),
                                   expected_version=1, now=AT)
        assert await payment_rows(db) == [("1000000001", 1, "approved")]


async def test_an_inexact_amount_is_stored_with_its_text_and_read_back(migrated: DbFactory):
    inexact = InexactAmount("25.123", AmountProblem.PRECISION)
    held = snapshot(amount=Money.parse("25.12", "ARS"), inexact=inexact)
    async with migrated(Schema.PAYMENTS) as db:
        uow = SqlPaymentsUnitOfWork(db, now)
        async with uow.begin() as tx:
            await tx.payments.save(Payment(held, 1), expected_version=None, now=AT)
        async with uow.begin() as tx:
            assert await tx.payments.get("1000000001") == Payment(held, 1)
        async with db.read() as conn:
            row = (await conn.execute(select(t.payments))).one()
        assert (row.amount_minor, row.currency) == (2512, "ARS")  # rounded toward zero...
        assert (row.amount_written, row.amount_problem) == ("25.123", "amount_precision")


@pytest.mark.postgres
async def test_two_transactions_saving_one_new_payment_never_raise_integrity_error():
    async with fresh_postgres_databases(1) as (url,):
        db = Database(url)
        try:
            await upgrade(db, Schema.PAYMENTS)
            uow = SqlPaymentsUnitOfWork(db, now)
            async with contextlib.AsyncExitStack() as first_tx:
                first = await first_tx.enter_async_context(uow.begin())
                async with uow.begin() as second:
                    # Both look before either writes: FOR UPDATE locks no absent row.
                    assert await first.payments.get("1000000001") is None
                    assert await second.payments.get("1000000001") is None
                    await first.payments.save(Payment(snapshot(), 1), expected_version=None,
                                              now=AT)
                    racing = asyncio.create_task(second.payments.save(
                        Payment(snapshot(), 1), expected_version=None, now=AT
                    ))
                    await asyncio.sleep(0.2)
                    assert not racing.done()  # waits on the first one's key...
                    await first_tx.aclose()  # ...which commits
                    with pytest.raises(ConcurrentUpdate):
                        await racing
            assert await payment_rows(db) == [("1000000001", 1, "approved")]
        finally:
            await db.dispose()


# --- Orders.save -------------------------------------------------------------------------

TOTAL = Money.parse("19.90", "BRL")


async def add_order(uow: SqlOrdersUnitOfWork, order_id: str = "order-1") -> Order:
    order = Order(order_id, OrderStatus.PENDING_PAYMENT, TOTAL)
    async with uow.begin() as tx:
        await tx.orders.add(order, [OrderLine("sku", 1, TOTAL)], description="", now=AT)
    return order


async def test_an_order_moved_two_steps_is_saved_against_the_version_read(
    migrated: DbFactory,
):
    async with migrated(Schema.ORDERS) as db:
        uow = SqlOrdersUnitOfWork(db, now)
        order = await add_order(uow)
        refunded = order.move_to(OrderStatus.PAID).move_to(OrderStatus.REFUNDED)
        assert refunded.version == order.version + 2
        async with uow.begin() as tx:
            await tx.orders.save(refunded, expected_version=order.version, now=AT)
        async with uow.begin() as tx:
            assert await tx.orders.get("order-1") == refunded


async def test_an_order_saved_over_a_version_not_read_raises(migrated: DbFactory):
    async with migrated(Schema.ORDERS) as db:
        uow = SqlOrdersUnitOfWork(db, now)
        order = await add_order(uow)
        async with uow.begin() as tx:
            await tx.orders.save(order.cancel(), expected_version=order.version, now=AT)
        async with uow.begin() as tx:
            with pytest.raises(ConcurrentUpdate, match="order-1"):
                await tx.orders.save(order.expire(), expected_version=order.version, now=AT)
        async with uow.begin() as tx:
            stored = await tx.orders.get("order-1")
        assert stored is not None and stored.status is OrderStatus.CANCELLED


async def test_an_order_held_for_review_keeps_its_reason(migrated: DbFactory):
    async with migrated(Schema.ORDERS) as db:
        uow = SqlOrdersUnitOfWork(db, now)
        order = await add_order(uow)
        held = order.hold_for_review(RejectionReason.AMOUNT_PRECISION)
        async with uow.begin() as tx:
            await tx.orders.save(held, expected_version=order.version, now=AT)
        async with uow.begin() as tx:
            stored = await tx.orders.get("order-1")
        assert stored == held
        assert stored.review_reason is RejectionReason.AMOUNT_PRECISION
