"""RabbitMQTransport against a real broker: topology, publish semantics, dropped connections
and poison messages. Each test has its own name prefix and deletes its topology after."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import aio_pika
import pytest

from payrelay.adapters.transports.rabbitmq import RabbitMQTransport
from payrelay.adapters.transports.rabbitmq_failures import RETRIES_HEADER
from payrelay.domain.errors import TransportUnavailable
from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION, PAYMENTS_SIDE_SUBSCRIPTION
from payrelay.ports import Delivery, OutboundMessage
from tests.integration.conftest import (
    Rabbitmqctl,
    RabbitMQFactory,
    close_connections,
    connection_pids,
)
from tests.integration.test_transport_contract import ROUTED_KEY, message
from tests.support import eventually

WORK_QUEUE = ORDER_SIDE_SUBSCRIPTION.queue


@dataclass
class Handler:
    """Records deliveries; fails every batch holding an id in `poison`, or a delivery of an
    id in `recovers_after` with fewer delayed retries behind it than that; the first call
    waits for `hold_first` (a transaction still open when the connection drops)."""

    poison: set[str] = field(default_factory=set)
    recovers_after: dict[str, int] = field(default_factory=dict)
    hold_first: asyncio.Event | None = None
    calls: list[list[Delivery]] = field(default_factory=list)
    handled: dict[str, list[Delivery]] = field(default_factory=dict)
    handled_at: dict[str, float] = field(default_factory=dict)  # first time, loop clock
    seen_at: dict[tuple[str, int], float] = field(default_factory=dict)  # (id, retries)

    async def __call__(self, batch: Sequence[Delivery]) -> None:
        now = asyncio.get_running_loop().time()
        self.calls.append(list(batch))
        for d in batch:
            self.seen_at.setdefault((d.message_id, retries(d)), now)
        if self.hold_first is not None and len(self.calls) == 1:
            await self.hold_first.wait()
        if self.poison & {d.message_id for d in batch} or any(
            retries(d) < self.recovers_after.get(d.message_id, 0) for d in batch
        ):
            raise RuntimeError("poison")
        for delivery in batch:
            self.handled.setdefault(delivery.message_id, []).append(delivery)
            self.handled_at.setdefault(delivery.message_id, now)


def retries(delivery: Delivery) -> int:
    return int(delivery.headers.get(RETRIES_HEADER, "0"))


async def left_unacked(
    consumer: RabbitMQTransport, handler: Handler, rabbitmq: RabbitMQFactory, **options: Any
) -> set[str]:
    """Close `consumer`; return what a fresh consumer is then given before a sentinel.

    First a marker goes through `consumer`: one consumer on a FIFO queue, so once it was
    handled every earlier message is in hand, and `close` settles the batch in hand.
    Whatever `consumer` failed to ack then returns to the queue, and a quorum queue hands
    returned messages out before newer ones: waiting for the sentinel makes the check
    positive instead of waiting a while for nothing to arrive.
    """
    marker, sentinel = message(-1), message(-2)
    assert (await consumer.publish([marker])).confirmed == {marker.message_id}
    await eventually(lambda: _handled_all(handler, {str(marker.message_id)}),
                     what="the marker handled")
    await consumer.close()
    successor = await rabbitmq(**options)  # the consumer's options, or declaring fails
    seen = Handler()
    await successor.subscribe(ORDER_SIDE_SUBSCRIPTION, seen)
    assert (await successor.publish([sentinel])).confirmed == {sentinel.message_id}
    await eventually(lambda: _handled_all(seen, {str(sentinel.message_id)}),
                     what="the sentinel handled")
    return set(seen.handled) - {str(sentinel.message_id)}


# --- topology ----------------------------------------------------------------------------


@pytest.mark.rabbitmq
async def test_topology_is_declared_with_the_specified_arguments(
    rabbitmq: RabbitMQFactory, rabbitmqctl: Rabbitmqctl, name_prefix: str
) -> None:
    await rabbitmq(delivery_limit=7, retry_delays=(0.5, 2.0))
    queues, exchanges, bindings = (
        [r for r in json.loads(out) if name_prefix in json.dumps(r)]
        for out in await asyncio.gather(
            rabbitmqctl("list_queues", "name", "durable", "arguments", "--formatter", "json"),
            rabbitmqctl("list_exchanges", "name", "type", "durable", "--formatter", "json"),
            rabbitmqctl("list_bindings", "source_name", "destination_name", "routing_key",
                        "--formatter", "json"),
        )
    )
    p = name_prefix
    assert {(e["name"], e["type"], e["durable"]) for e in exchanges} == {
        (f"{p}payrelay.payments", "topic", True),
        (f"{p}payrelay.orders", "topic", True),
        (f"{p}payrelay.dlx", "direct", True),
        (f"{p}payrelay.retry", "direct", True),
    }
    args = {q["name"]: {k: v for k, _, v in q["arguments"]} for q in queues}
    assert all(q["durable"] for q in queues)
    for sub in (ORDER_SIDE_SUBSCRIPTION, PAYMENTS_SIDE_SUBSCRIPTION):
        work = f"{p}{sub.queue}"
        assert args[work] == {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": f"{p}payrelay.dlx",
            "x-dead-letter-routing-key": work,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            "x-delivery-limit": 7,
        }
        assert args[f"{work}.dlq"] == {"x-queue-type": "quorum"}
        for step, ttl in ((1, 500), (2, 2000)):
            assert args[f"{work}.retry.{step}"] == {
                "x-queue-type": "quorum",
                "x-message-ttl": ttl,
                "x-dead-letter-exchange": f"{p}payrelay.retry",
                "x-dead-letter-routing-key": work,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            }
    assert len(queues) == 2 * (1 + 1 + 2)
    routes = {(b["source_name"], b["destination_name"], b["routing_key"]) for b in bindings}
    assert {
        (f"{p}payrelay.payments", f"{p}orders.payment-events", "payment.*"),
        (f"{p}payrelay.orders", f"{p}payments.order-events", "order.*"),
        (f"{p}payrelay.dlx", f"{p}orders.payment-events.dlq", f"{p}orders.payment-events"),
        (f"{p}payrelay.dlx", f"{p}payments.order-events.dlq", f"{p}payments.order-events"),
        (f"{p}payrelay.retry", f"{p}orders.payment-events", f"{p}orders.payment-events"),
        (f"{p}payrelay.retry", f"{p}payments.order-events", f"{p}payments.order-events"),
    } <= routes
    for queue in (f"{p}orders.payment-events", f"{p}payments.order-events"):
        for step in (1, 2):  # the consumer publishes a failed message to its next step
            retry = f"{queue}.retry.{step}"
            assert (f"{p}payrelay.retry", retry, retry) in routes


@pytest.mark.rabbitmq
async def test_connecting_twice_redeclares_the_same_topology(rabbitmq: RabbitMQFactory) -> None:
    await rabbitmq()
    await rabbitmq()  # a second process starting: PRECONDITION_FAILED would raise here


# --- publishing --------------------------------------------------------------------------


@pytest.mark.rabbitmq
async def test_a_relay_alone_publishes_persistent_messages_into_the_queue(
    rabbitmq: RabbitMQFactory, rabbitmq_url: str, name_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = await rabbitmq()  # nobody subscribed: the queues come from connect()
    routed = replace(message(1), attempts=3)
    returned = message(2, routing_key="refund.created")
    unknown_exchange = replace(message(3), exchange="payrelay.nowhere")

    result = await transport.publish([routed, returned, unknown_exchange])

    assert result.confirmed == {routed.message_id}
    # Unroutable is left unconfirmed and logged: the relay retries it with backoff.
    unroutable = [r.getMessage() for r in caplog.records if "unroutable" in r.getMessage()]
    assert any(str(returned.message_id) in line and "no queue is bound" in line
               for line in unroutable)
    assert any(str(unknown_exchange.message_id) in line for line in unroutable)
    got = await _get_all(rabbitmq_url, f"{name_prefix}{WORK_QUEUE}")
    assert len(got) == 1
    assert (got[0].message_id, got[0].correlation_id, got[0].type, got[0].content_type) == (
        str(routed.message_id), "order-1", ROUTED_KEY, "application/json")
    assert got[0].delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert got[0].headers["x-payrelay-attempt"] == 3
    assert got[0].body == routed.body
    assert (await transport.publish([returned])).confirmed == set()  # the channel still works
    await transport.check()


async def test_an_unreachable_broker_raises_transport_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = RabbitMQTransport(f"amqp://guest:guest@127.0.0.1:{port}/")
    with pytest.raises(TransportUnavailable):
        await transport.publish([message(1)])
    with pytest.raises(TransportUnavailable):
        await transport.check()
    with pytest.raises(TransportUnavailable) as raised:
        await transport.connect()
    assert "guest" not in str(raised.value)  # /readyz shows it: never a credential
    await transport.close()


# --- consuming ---------------------------------------------------------------------------


@pytest.mark.rabbitmq
async def test_a_failing_message_is_retried_after_each_delay_then_dead_lettered(
    rabbitmq: RabbitMQFactory, rabbitmq_url: str, name_prefix: str
) -> None:
    transport = await rabbitmq(retry_delays=(0.2, 0.4), batch_linger_seconds=0.02)
    messages = [message(n) for n in range(10)]
    poison = str(messages[0].message_id)  # first in line: the rest must get past it
    handler, dead = Handler(poison={poison}), Handler()
    await transport.subscribe(ORDER_SIDE_SUBSCRIPTION, handler)
    await transport.subscribe_dead_letters(ORDER_SIDE_SUBSCRIPTION, dead)

    assert (await transport.publish(messages)).confirmed == {m.message_id for m in messages}

    await eventually(lambda: _handled_all(dead, {poison}), what="the poison message dead")
    others = {str(m.message_id) for m in messages} - {poison}
    assert set(handler.handled) == others
    # One delivery per step (0, then 1 and 2 delayed retries), spaced by the delays.
    first, second, third = (handler.seen_at[(poison, n)] for n in range(3))
    assert second - first >= 0.2 and third - second >= 0.4
    assert not any(key == poison for key, n in handler.seen_at if n > 2)
    assert max(handler.handled_at[i] for i in others) < second  # it blocked nobody
    tries = [d for call in handler.calls for d in call if d.message_id == poison]
    assert {d.routing_key for d in tries} == {ROUTED_KEY}  # not the retry queues' keys
    assert tries[0].redelivered is False and all(d.redelivered for d in tries if retries(d))

    (letter,) = dead.handled[poison]
    assert (letter.routing_key, letter.body) == (ROUTED_KEY, messages[0].body)
    assert {k: v for k, v in letter.headers.items() if k.startswith("x-payrelay-")} == {
        "x-payrelay-attempt": "0",
        "x-payrelay-retries": "2",
        "x-payrelay-reason": "consumer retries exhausted",
        "x-payrelay-attempts": "3",
        "x-payrelay-error": "RuntimeError: poison",
        "x-payrelay-exchange": ORDER_SIDE_SUBSCRIPTION.exchange,
        "x-payrelay-routing-key": ROUTED_KEY,
    }
    await transport.close()  # settles what it holds; anything unacked returns to a queue
    assert set((await ready_counts(rabbitmq_url, transport)).values()) == {0}


@pytest.mark.rabbitmq
async def test_a_message_that_fails_twice_then_passes_is_handled_and_not_dead(
    rabbitmq: RabbitMQFactory, rabbitmq_url: str
) -> None:
    transport = await rabbitmq(retry_delays=(0.05, 0.05), batch_linger_seconds=0.02)
    flaky, steady = message(1), message(2)
    handler = Handler(recovers_after={str(flaky.message_id): 2})
    dead = Handler()
    await transport.subscribe(ORDER_SIDE_SUBSCRIPTION, handler)
    await transport.subscribe_dead_letters(ORDER_SIDE_SUBSCRIPTION, dead)

    await transport.publish([flaky, steady])

    ids = {str(flaky.message_id), str(steady.message_id)}
    await eventually(lambda: _handled_all(handler, ids), what="both handled")
    (handled,) = handler.handled[str(flaky.message_id)]
    assert (retries(handled), handled.routing_key) == (2, ROUTED_KEY)
    await transport.close()
    assert dead.calls == []
    assert set((await ready_counts(rabbitmq_url, transport)).values()) == {0}


@pytest.mark.rabbitmq
async def test_a_message_past_the_delivery_limit_reaches_the_feed_with_the_brokers_reason(
    rabbitmq: RabbitMQFactory, rabbitmq_url: str, name_prefix: str
) -> None:
    transport = await rabbitmq(delivery_limit=1)
    dead = Handler()
    await transport.subscribe_dead_letters(ORDER_SIDE_SUBSCRIPTION, dead)
    crashing = message(1)
    await transport.publish([crashing])

    # A consumer that never settles it: every return counts, as a dropped connection's would.
    returned: list[str | None] = []

    async def crash(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        returned.append(incoming.message_id)
        await incoming.reject(requeue=True)

    connection = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{name_prefix}{WORK_QUEUE}", ensure=False)
        await queue.consume(crash)
        await eventually(lambda: _handled_all(dead, {str(crashing.message_id)}),
                         what="the message in the dead-letter feed")
    finally:
        await connection.close()
    assert returned == [str(crashing.message_id)] * 2  # delivery_limit + 1 deliveries
    (letter,) = dead.handled[str(crashing.message_id)]
    assert letter.routing_key == ROUTED_KEY
    assert letter.headers["x-payrelay-reason"] == "delivery limit reached"
    assert letter.headers["x-payrelay-attempts"] == "2"
    assert letter.headers["x-payrelay-exchange"] == ORDER_SIDE_SUBSCRIPTION.exchange
    assert "delivered 2 times" in letter.headers["x-payrelay-error"]


@pytest.mark.rabbitmq
async def test_connections_carry_the_prefix_and_delete_topology_removes_everything(
    rabbitmq: RabbitMQFactory, rabbitmqctl: Rabbitmqctl, name_prefix: str
) -> None:
    transport = await rabbitmq()
    await transport.subscribe(ORDER_SIDE_SUBSCRIPTION, Handler())
    await transport.subscribe_dead_letters(ORDER_SIDE_SUBSCRIPTION, Handler())
    assert len(await connection_pids(rabbitmqctl, f"{name_prefix}payrelay")) == 1
    await transport.close()

    await transport.delete_topology()

    queues, exchanges = await asyncio.gather(rabbitmqctl("list_queues", "name"),
                                             rabbitmqctl("list_exchanges", "name"))
    assert name_prefix not in queues + exchanges


@pytest.mark.rabbitmq
async def test_publisher_and_consumer_survive_server_side_closes_mid_stream(
    rabbitmq: RabbitMQFactory, rabbitmqctl: Rabbitmqctl, name_prefix: str
) -> None:
    consumer = await rabbitmq(connection_name=f"{name_prefix}consumer", prefetch=20,
                              batch_max=20, batch_linger_seconds=0.01)
    publisher = await rabbitmq(connection_name=f"{name_prefix}publisher",
                               confirm_timeout_seconds=2)
    first_close_done = asyncio.Event()
    handler = Handler(hold_first=first_close_done)  # its first batch is open across a close
    await consumer.subscribe(ORDER_SIDE_SUBSCRIPTION, handler)
    # Fresh messages for as long as the closes take (rabbitmqctl is slow on a loaded
    # machine: a fixed number of them could all be confirmed before the first close).
    messages: list[OutboundMessage] = []
    numbers = itertools.count()

    def fresh(count: int) -> list[OutboundMessage]:
        batch = [message(next(numbers)) for _ in range(count)]
        messages.extend(batch)
        return batch

    relay = PacedRelay(publisher)

    pids: list[str] = []

    async def both_connected() -> bool:  # the second time round: both have reconnected
        pids[:] = await connection_pids(rabbitmqctl, name_prefix)
        return len(pids) == 2

    for _ in range(2):
        await eventually(both_connected, what="the publisher and consumer connections")
        closing = asyncio.create_task(close_connections(rabbitmqctl, pids))
        while not closing.done():  # publishing all along, so the close lands mid-stream
            await relay.publish(fresh(2))
        await closing
        first_close_done.set()
    assert relay.resent > 0  # the publisher was cut while it had messages in flight
    await relay.publish(fresh(40))  # only a restored consumer takes these
    await relay.drain(timeout=20)

    everything = {str(m.message_id) for m in messages}
    await eventually(lambda: _handled_all(handler, everything), timeout=20,
                     what="every message handled at least once")
    # The held batch committed but could not be acked on its dead channel: redelivered.
    held = {d.message_id for d in handler.calls[0]}
    assert all(len(handler.handled[i]) >= 2 for i in held)
    assert any(d.redelivered for i in held for d in handler.handled[i])
    await publisher.check()
    await consumer.check()
    assert await left_unacked(consumer, handler, rabbitmq) == set()  # all acked


class PacedRelay:
    """Publishes like the outbox relay: whatever is unconfirmed is sent again, attempt+1."""

    def __init__(self, transport: RabbitMQTransport) -> None:
        self._transport = transport
        self.pending: dict[uuid.UUID, OutboundMessage] = {}
        self.unavailable = 0  # rounds that raised TransportUnavailable
        self.resent = 0  # messages sent again because a round did not confirm them

    async def publish(self, messages: list[OutboundMessage]) -> None:
        """One round: the new messages and every unconfirmed one, then a short pause."""
        self.pending.update((m.message_id, m) for m in messages)
        await self._round()
        await asyncio.sleep(0.01)  # pacing, so that a few messages span each close

    async def drain(self, *, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while self.pending:
                await self._round()
                if self.pending:
                    await asyncio.sleep(0.05)  # the relay's backoff, shortened

    async def _round(self) -> None:
        batch = list(self.pending.values())
        try:
            confirmed = (await self._transport.publish(batch)).confirmed
        except TransportUnavailable:
            self.unavailable += 1
            confirmed = set()
        for m in batch:
            if m.message_id in confirmed:
                del self.pending[m.message_id]
            else:
                self.pending[m.message_id] = replace(m, attempts=m.attempts + 1)
                self.resent += 1


async def _handled_all(handler: Handler, ids: set[str]) -> bool:
    return ids <= handler.handled.keys()


async def _get_all(url: str, queue: str) -> list[Any]:
    """Take (and ack) every message waiting in `queue`."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        source = await channel.get_queue(queue)
        taken = []
        while (got := await source.get(fail=False, timeout=5)) is not None:
            await got.ack()
            taken.append(got)
        return taken
    finally:
        await connection.close()


async def ready_counts(url: str, transport: RabbitMQTransport) -> dict[str, int]:
    """How many messages wait in each queue of the order-side subscription."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        counts = {}
        for name in transport.topology.queues(ORDER_SIDE_SUBSCRIPTION):
            queue = await channel.declare_queue(name, passive=True)
            counts[name] = queue.declaration_result.message_count or 0
        return counts
    finally:
        await connection.close()
