"""Both consumers, handed deliveries directly: inbox and state change commit together."""

from __future__ import annotations

import pytest

from payrelay.domain.errors import InjectedFault, StorageUnavailable
from payrelay.domain.events import Envelope, EventType, RejectionReason
from payrelay.domain.order import OrderStatus
from payrelay.domain.work import OutboxStatus, RefundStatus
from payrelay.faults import FaultPoint
from payrelay.ports import Delivery
from tests.contract.builders import envelope, payment
from tests.services.conftest import World


def delivery(message: Envelope) -> Delivery:
    return Delivery(message_id=str(message.message_id), routing_key=message.routing_key,
                    body=message.to_json())


async def test_an_approval_pays_the_order_and_answers(world: World) -> None:
    await world.add_order()
    approval = envelope("1")
    await world.order_consumer.handle([delivery(approval)])
    order = world.o.orders["order-1"].order
    assert (order.status, order.paid_by, order.version) == (OrderStatus.PAID, "1", 2)
    (reply,) = world.o.outbox.values()
    assert (reply.routing_key, reply.status) == ("order.payment_applied", OutboxStatus.PENDING)
    assert world.o.inbox[approval.message_id].reply_id == reply.message_id
    assert world.o.payments["1"].last_version == 1
    assert [t.step for t in world.o.timeline] == ["order.payment_applied"]


async def test_a_redelivery_changes_nothing_and_repeats_the_answer(world: World) -> None:
    await world.add_order()
    approval = envelope("1")
    await world.order_consumer.handle([delivery(approval)])
    (reply,) = world.o.outbox.values()
    await world.orders.relay_store.mark_sent([reply.message_id], now=world.clock())
    world.clock.advance(seconds=5)
    await world.order_consumer.handle([delivery(approval)])
    assert world.order_consumer.stats.duplicates == 1
    assert world.o.orders["order-1"].order.version == 2
    (again,) = world.o.outbox.values()  # the same reply, pending again: not a second one
    assert (again.message_id, again.status) == (reply.message_id, OutboxStatus.PENDING)


async def test_a_crash_before_commit_leaves_the_order_untouched(world: World) -> None:
    await world.add_order()
    world.faults.arm(FaultPoint.ORDER_CONSUMER_BEFORE_COMMIT)
    with pytest.raises(InjectedFault):
        await world.order_consumer.handle([delivery(envelope("1"))])
    assert world.o.orders["order-1"].order.status is OrderStatus.PENDING_PAYMENT
    assert world.o.inbox == {} and world.o.outbox == {} and world.o.payments == {}


async def test_an_undecodable_message_is_kept_as_a_dead_letter(world: World) -> None:
    bad = Delivery(message_id="m-1", routing_key="payment.approved", body=b"{not json")
    await world.order_consumer.handle([bad])
    (dead,) = world.o.dead_letters.values()
    assert (dead.message_id, dead.reason) == ("m-1", "permanent: undecodable message")


async def test_a_second_approval_is_rejected_and_its_refund_requested(world: World) -> None:
    await world.add_order()
    await world.order_consumer.handle([delivery(envelope("1"))])
    await world.order_consumer.handle([delivery(envelope("2"))])
    replies = [r for r in world.o.outbox.values() if r.payment_id == "2"]
    rejection = Envelope.from_json(replies[0].body)
    assert rejection.reason is RejectionReason.ALREADY_PAID

    async with world.payments.begin() as tx:
        await tx.payments.save(payment("2"), expected_version=None, now=world.clock())
    await world.outcome_consumer.handle([delivery(rejection)])
    assert world.p.payments["2"].order_outcome == "order.payment_rejected"
    refund = world.p.refunds["2"]
    assert (refund.status, refund.request.amount, refund.next_attempt_at) == (
        RefundStatus.REQUESTED, rejection.amount, world.clock())
    assert [t.step for t in world.p.timeline] == [
        "refund.requested", "outcome.order.payment_rejected"]
    await world.outcome_consumer.handle([delivery(rejection)])  # redelivered
    assert world.outcome_consumer.stats.duplicates == 1
    assert len(world.p.refunds) == 1


async def test_an_unknown_order_holds_the_money_for_a_person(world: World) -> None:
    rejection = envelope("1", type=EventType.ORDER_PAYMENT_REJECTED, order_version=None,
                         reason=RejectionReason.UNKNOWN_ORDER)
    await world.outcome_consumer.handle([delivery(rejection)])
    assert world.p.refunds["1"].status == RefundStatus.HELD
    assert world.p.inbox[rejection.message_id].reply_id is None


async def test_a_failed_outcome_transaction_records_nothing(world: World) -> None:
    rejection = envelope("1", type=EventType.ORDER_PAYMENT_REJECTED,
                         reason=RejectionReason.ALREADY_PAID)
    world.faults.arm(FaultPoint.OUTCOME_CONSUMER_BEFORE_COMMIT)
    with pytest.raises(InjectedFault):
        await world.outcome_consumer.handle([delivery(rejection)])
    assert world.p.refunds == {} and world.p.inbox == {} and world.p.timeline == []


async def test_a_database_outage_raises_and_the_redelivery_applies_it(world: World) -> None:
    rejection = envelope("1", type=EventType.ORDER_PAYMENT_REJECTED,
                         reason=RejectionReason.ALREADY_PAID)
    world.payments_db.available = False
    with pytest.raises(StorageUnavailable):  # not acked: the transport delivers it again
        await world.outcome_consumer.handle([delivery(rejection)])
    world.payments_db.available = True
    await world.outcome_consumer.handle([delivery(rejection)])
    assert world.p.refunds["1"].status == RefundStatus.REQUESTED
