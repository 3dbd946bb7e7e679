"""The relays over LocalTransport: a publish is confirmed or not, and only confirmed is sent.

A whole payment's round trip, each step run by hand: processor, payments relay (the order
consumer applies it), orders relay (the outcome consumer records it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from payrelay.domain.errors import TransportUnavailable
from payrelay.domain.order import OrderStatus
from payrelay.domain.work import OutboxStatus
from payrelay.ports import BatchHandler, OutboundMessage, PublishResult, Subscription
from payrelay.services.relay import OutboxRelay
from tests.services.conftest import LEASE, POLICY, World


async def test_an_approved_payment_pays_its_order_and_the_answer_comes_back(
    world: World,
) -> None:
    await world.subscribe_consumers()
    await world.add_order()
    payment_id = await world.pay()
    await world.notify(payment_id)
    await world.processor().run_once()

    sent = await world.relay("payments").run_once()
    assert (sent.claimed, sent.confirmed, sent.retried) == (1, 1, 0)
    assert world.o.orders["order-1"].order.status is OrderStatus.PAID
    assert [r.status for r in world.p.outbox.values()] == [OutboxStatus.SENT]
    (reply,) = world.o.outbox.values()
    assert (reply.routing_key, reply.status) == ("order.payment_applied", OutboxStatus.PENDING)

    answered = await world.relay("orders").run_once()
    assert answered.confirmed == 1
    assert world.p.payments[payment_id].order_outcome == "order.payment_applied"
    assert [r.status for r in world.o.outbox.values()] == [OutboxStatus.SENT]
    assert (await world.relay("payments").run_once()).claimed == 0


async def test_an_unconfirmed_message_stays_pending_and_is_retried_at_its_backoff(
    world: World,
) -> None:
    """Nobody subscribed: unroutable, as a mandatory publish RabbitMQ returns."""
    payment_id = await world.pay()
    await world.notify(payment_id)
    await world.processor().run_once()
    result = await world.relay("payments").run_once()
    assert (result.confirmed, result.retried) == (0, 1)
    (row,) = world.p.outbox.values()
    base = timedelta(seconds=POLICY.backoff.base)
    assert world.clock() + base / 2 <= row.next_attempt_at <= world.clock() + base
    assert (row.status, row.attempts, row.failures) == (OutboxStatus.PENDING, 1, 0)
    world.clock.now = row.next_attempt_at - timedelta(milliseconds=1)
    assert (await world.relay("payments").run_once()).claimed == 0
    await world.subscribe_consumers()
    await world.add_order()
    world.clock.now = row.next_attempt_at
    assert (await world.relay("payments").run_once()).confirmed == 1
    assert world.o.orders["order-1"].order.status is OrderStatus.PAID


class DownTransport:
    """A broker that cannot be reached."""

    async def publish(self, messages: Sequence[OutboundMessage]) -> PublishResult:
        raise TransportUnavailable("connection refused")

    async def subscribe(self, subscription: Subscription, handler: BatchHandler) -> None:
        return None

    async def subscribe_dead_letters(self, subscription: Subscription,
                                     handler: BatchHandler) -> None:
        return None

    async def check(self) -> None:
        raise TransportUnavailable("connection refused")

    async def close(self) -> None:
        return None


async def test_a_transport_outage_is_waited_out_without_giving_up(world: World) -> None:
    payment_id = await world.pay()
    await world.notify(payment_id)
    await world.processor().run_once()
    relay = OutboxRelay(store=world.payments.relay_store, transport=DownTransport(),
                        clock=world.clock, faults=world.faults, retry=POLICY, rng=world.rng,
                        lease=LEASE)
    for _ in range(20):  # far past any schedule: an outage never spends an attempt
        result = await relay.run_once()
        assert (result.claimed, result.retried) == (1, 1)
        (row,) = world.p.outbox.values()
        world.clock.now = row.next_attempt_at
    assert (row.status, row.attempts, row.failures) == (OutboxStatus.PENDING, 20, 0)
    assert world.p.dead_letters == {}
