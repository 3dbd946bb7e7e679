"""The order consumer applies a batch set-based, on every backend: each event in a batch
sees what the ones before it did, and one batch costs a few statements per table."""

from __future__ import annotations

from datetime import timedelta

from payrelay.domain.events import Envelope, EventType, RejectionReason
from payrelay.domain.order import Order, OrderStatus
from payrelay.faults import Faults
from payrelay.ports import Delivery, OrderLine
from payrelay.services.consume import PaymentEventConsumer
from tests.contract.builders import AT, TEN, envelope
from tests.contract.conftest import Storage

LEASE = timedelta(seconds=30)


def delivery(message: Envelope) -> Delivery:
    return Delivery(message_id=str(message.message_id), routing_key=message.routing_key,
                    body=message.to_json())


async def add_orders(storage: Storage, *order_ids: str) -> None:
    async with storage.orders.begin() as tx:
        for order_id in order_ids:
            order = Order(order_id=order_id, status=OrderStatus.PENDING_PAYMENT, total=TEN)
            await tx.orders.add(order, [OrderLine("SKU-1", 1, TEN)], description="Mate",
                                now=AT)


def consumer(storage: Storage) -> PaymentEventConsumer:
    return PaymentEventConsumer(uow=storage.orders, clock=storage.clock, faults=Faults())


async def replies(storage: Storage) -> list[Envelope]:
    claimed = await storage.orders_relay.claim_due(limit=100, now=storage.clock(), lease=LEASE)
    return [Envelope.from_json(m.body) for m in claimed]


async def test_a_batch_pays_each_of_its_orders_and_answers_each(storage: Storage) -> None:
    order_ids = [f"order-{n}" for n in range(1, 6)]
    await add_orders(storage, *order_ids)
    events = [envelope(str(n), order_id=o) for n, o in enumerate(order_ids, start=1)]
    await consumer(storage).handle([delivery(e) for e in events])
    async with storage.orders.begin() as tx:
        orders = await tx.orders.get_many(order_ids)
        seen = await tx.inbox.seen_many([e.message_id for e in events])
    assert {o.status for o in orders.values()} == {OrderStatus.PAID}
    answers = await replies(storage)
    assert sorted(a.payment_id for a in answers) == ["1", "2", "3", "4", "5"]
    assert {a.type for a in answers} == {EventType.ORDER_PAYMENT_APPLIED}
    assert {seen[e.message_id].reply_id for e in events} == {a.message_id for a in answers}


async def test_events_for_one_order_in_one_batch_see_each_other(storage: Storage) -> None:
    await add_orders(storage, "order-1")
    earlier, later = AT - timedelta(minutes=5), AT
    # The later approval arrives first in the batch, pays, and is displaced by the earlier.
    second = envelope("2", at=later)
    first = envelope("1", at=earlier)
    await consumer(storage).handle([delivery(second), delivery(first), delivery(first)])
    async with storage.orders.begin() as tx:
        order = (await tx.orders.get_many(["order-1"]))["order-1"]
        records = await tx.orders.get_payments(["1", "2"])
        seen = await tx.inbox.seen_many([first.message_id, second.message_id])
    assert (order.status, order.paid_by, order.version) == (OrderStatus.PAID, "1", 3)
    assert records["2"].outcome is not None
    assert records["2"].outcome.reason is RejectionReason.ALREADY_PAID
    by_payment = {a.payment_id: a for a in await replies(storage)}
    rejection = [a for a in await _all_replies(storage) if a.payment_id == "2"]
    assert by_payment["1"].type is EventType.ORDER_PAYMENT_APPLIED
    assert [r.reason for r in rejection if r.type is EventType.ORDER_PAYMENT_REJECTED] == [
        RejectionReason.ALREADY_PAID]
    # A redelivery of the displaced payment's approval repeats its new answer: a rejection.
    (redirected,) = [r for r in rejection if r.type is EventType.ORDER_PAYMENT_REJECTED]
    assert seen[second.message_id].reply_id == redirected.message_id


async def _all_replies(storage: Storage) -> list[Envelope]:
    """Every reply written, sent or not (claim_due has already leased them once)."""
    later = storage.clock() + LEASE + timedelta(seconds=1)
    claimed = await storage.orders_relay.claim_due(limit=100, now=later, lease=LEASE)
    return [Envelope.from_json(m.body) for m in claimed]


async def test_a_copy_in_the_same_batch_is_applied_once(storage: Storage) -> None:
    await add_orders(storage, "order-1")
    approval = envelope("1")
    handler = consumer(storage)
    await handler.handle([delivery(approval), delivery(approval)])
    assert (handler.stats.consumed, handler.stats.duplicates) == (2, 1)
    assert len(await replies(storage)) == 1


async def test_an_approval_then_its_refund_in_one_batch_refund_the_order(
    storage: Storage,
) -> None:
    await add_orders(storage, "order-1")
    approved = envelope("1")
    refunded = envelope("1", type=EventType.PAYMENT_REFUNDED, version=2)
    await consumer(storage).handle([delivery(approved), delivery(refunded)])
    async with storage.orders.begin() as tx:
        order = (await tx.orders.get_many(["order-1"]))["order-1"]
    assert order.status is OrderStatus.REFUNDED
    assert await storage.timeline("order-1") == [
        ("orders", "order.payment_applied", "order paid"),
        ("orders", "seen.payment.refunded", "order refunded")]
