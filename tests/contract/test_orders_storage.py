"""The orders database's rules (ports/orders.py), on every backend."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from payrelay.domain.errors import ConcurrentUpdate, UnstorableRecord
from payrelay.domain.order import Order, OrderStatus, Outcome, PaymentRecord
from payrelay.domain.payment import PaymentStatus
from payrelay.ports import OrderLine, OrderUpdate
from tests.contract.builders import AT, TEN
from tests.contract.conftest import Storage

LINES = [OrderLine(sku="SKU-1", quantity=1, unit_price=TEN)]


async def add_order(storage: Storage, order_id: str = "order-1") -> Order:
    order = Order(order_id=order_id, status=OrderStatus.PENDING_PAYMENT, total=TEN)
    async with storage.orders.begin() as tx:
        await tx.orders.add(order, LINES, description="Mate", now=storage.clock())
    return order


async def test_an_order_is_saved_against_the_version_read(storage: Storage) -> None:
    order = await add_order(storage)
    # A refund seen first: paid, then refunded, in one event: two versions at once.
    refunded = replace(order.move_to(OrderStatus.PAID), paid_by="1").move_to(
        OrderStatus.REFUNDED)
    async with storage.orders.begin() as tx:
        assert await tx.orders.get("order-1", for_update=True) == order
        await tx.orders.save(refunded, expected_version=order.version, now=AT)
    async with storage.orders.begin() as tx:
        with pytest.raises(ConcurrentUpdate):
            await tx.orders.save(order.cancel(), expected_version=order.version, now=AT)
    async with storage.orders.begin() as tx:
        assert await tx.orders.get("order-1") == refunded
        assert await tx.orders.get("order-2") is None


async def test_unpaid_since_lists_old_waiting_orders_oldest_first(storage: Storage) -> None:
    for n in (1, 2, 3):
        await add_order(storage, f"order-{n}")
        storage.clock.advance(minutes=1)
    async with storage.orders.begin() as tx:
        paid = replace((await tx.orders.get("order-1") or pytest.fail()).move_to(
            OrderStatus.PAID), paid_by="1")
        await tx.orders.save(paid, expected_version=1, now=AT)
    async with storage.orders.begin() as tx:
        cutoff = AT + timedelta(minutes=2)  # order-3 was created at the cutoff
        assert await tx.orders.unpaid_since(cutoff, limit=10) == ["order-2"]
        assert await tx.orders.unpaid_since(AT + timedelta(hours=1), limit=1) == ["order-2"]


async def test_payment_records_are_written_over(storage: Storage) -> None:
    first = PaymentRecord(payment_id="1", order_id="order-1", last_version=1,
                          last_status=PaymentStatus.PENDING)
    later = replace(first, last_version=2, last_status=PaymentStatus.APPROVED,
                    outcome=Outcome.applied(), approved_at=AT)
    async with storage.orders.begin() as tx:
        assert await tx.orders.get_payment("1") is None
        await tx.orders.save_payment(first)
    async with storage.orders.begin() as tx:
        assert await tx.orders.get_payment("1") == first
        await tx.orders.save_payment(later)
    async with storage.orders.begin() as tx:
        assert await tx.orders.get_payment("1") == later


async def test_an_order_id_is_stored_once(storage: Storage) -> None:
    await add_order(storage)
    with pytest.raises(UnstorableRecord):
        await add_order(storage)


async def test_a_batch_of_orders_is_read_locked_and_saved_in_one_go(storage: Storage) -> None:
    orders = [await add_order(storage, f"order-{n}") for n in (1, 2, 3)]
    paid = [replace(o.move_to(OrderStatus.PAID), paid_by=str(n))
            for n, o in enumerate(orders[:2], start=1)]
    async with storage.orders.begin() as tx:
        found = await tx.orders.get_many(["order-2", "order-1", "order-9"], for_update=True)
        assert dict(found) == {"order-1": orders[0], "order-2": orders[1]}
        await tx.orders.save_many([OrderUpdate(p, 1) for p in paid], now=AT)
    async with storage.orders.begin() as tx:
        assert dict(await tx.orders.get_many([o.order_id for o in orders])) == {
            "order-1": paid[0], "order-2": paid[1], "order-3": orders[2]}
        assert await tx.orders.unpaid_since(AT + timedelta(hours=1), limit=10) == ["order-3"]


async def test_a_batch_save_with_one_stale_order_raises_and_writes_nothing(
    storage: Storage,
) -> None:
    first, second = await add_order(storage, "order-1"), await add_order(storage, "order-2")
    with pytest.raises(ConcurrentUpdate):
        async with storage.orders.begin() as tx:
            await tx.orders.save_many([OrderUpdate(first.cancel(), 1),
                                       OrderUpdate(second.cancel(), 7)], now=AT)
    async with storage.orders.begin() as tx:
        assert dict(await tx.orders.get_many(["order-1", "order-2"])) == {
            "order-1": first, "order-2": second}


async def test_payment_records_are_inserted_and_written_over_as_a_batch(
    storage: Storage,
) -> None:
    one = PaymentRecord(payment_id="1", order_id="order-1", last_version=1,
                        last_status=PaymentStatus.PENDING)
    two = replace(one, payment_id="2")
    async with storage.orders.begin() as tx:
        await tx.orders.save_payments([one])
    later = replace(one, last_version=2, last_status=PaymentStatus.APPROVED,
                    outcome=Outcome.applied(), approved_at=AT)
    async with storage.orders.begin() as tx:
        await tx.orders.save_payments([later, two])
    async with storage.orders.begin() as tx:
        assert dict(await tx.orders.get_payments(["1", "2", "3"])) == {"1": later, "2": two}
