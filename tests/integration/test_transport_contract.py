"""One contract, every transport: the in-process fake must promise what RabbitMQ delivers.

"Confirmed" differs in strength (local: the handler committed; RabbitMQ: a durable queue
holds it), so each test drives the transport the way the relay does: publish, and publish
again whatever was not confirmed, with its attempt count raised. What both must guarantee
is then the same: every routable message is eventually handled, a failing handler loses
nothing, nothing unroutable is confirmed, a message its consumer keeps failing on reaches
the dead-letter handler with the same verdict headers, and an outage never does.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

import pytest

from payrelay.adapters.transports.local import LocalTransport
from payrelay.domain.errors import StorageUnavailable
from payrelay.domain.retry import RetrySchedule
from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION
from payrelay.ports import Delivery, OutboundMessage, Transport
from tests.integration.conftest import RabbitMQFactory
from tests.support import eventually

ROUTED_KEY = "payment.approved"  # matches ORDER_SIDE_SUBSCRIPTION's "payment.*"
RETRY_DELAYS = (0.05, 0.1)  # the consumer's retry schedule, on both transports


def message(n: int, routing_key: str = ROUTED_KEY) -> OutboundMessage:
    return OutboundMessage(
        message_id=uuid.uuid4(),
        exchange=ORDER_SIDE_SUBSCRIPTION.exchange,
        routing_key=routing_key,
        correlation_id=f"order-{n}",
        body=b'{"n": %d}' % n,
    )


@dataclass
class Recorder:
    """A batch handler that remembers every call; it fails any batch holding the first
    delivery (not yet `redelivered`) of a message in `fail_first`, or any message in
    `poison`, and raises StorageUnavailable (an outage) for the first `outage` calls."""

    fail_first: set[str] = field(default_factory=set)
    poison: set[str] = field(default_factory=set)
    outage: int = 0
    calls: list[list[Delivery]] = field(default_factory=list)
    handled: dict[str, Delivery] = field(default_factory=dict)

    async def __call__(self, batch: Sequence[Delivery]) -> None:
        self.calls.append(list(batch))
        if len(self.calls) <= self.outage:
            raise StorageUnavailable("the consumer's database is down")
        failing = self.fail_first & {d.message_id for d in batch if not d.redelivered}
        failing |= self.poison & {d.message_id for d in batch}
        if failing:
            raise RuntimeError(f"handler failed on {sorted(failing)}")
        self.handled.update((d.message_id, d) for d in batch)

    def tries_alone(self, message_id: str) -> int:
        """Calls with only this message (a failed batch is tried again message by message)."""
        return sum(1 for call in self.calls if [d.message_id for d in call] == [message_id])


async def publish_like_the_relay(
    transport: Transport, messages: list[OutboundMessage], *, timeout: float = 10
) -> list[set[uuid.UUID]]:
    """Publish until all are confirmed, raising `attempts` on every resend; each round's ids."""
    rounds: list[set[uuid.UUID]] = []
    pending = list(messages)
    async with asyncio.timeout(timeout):
        while pending:
            confirmed = (await transport.publish(pending)).confirmed
            rounds.append(confirmed)
            pending = [replace(m, attempts=m.attempts + 1)
                       for m in pending if m.message_id not in confirmed]
            if pending:
                await asyncio.sleep(0.01)  # the relay's backoff, shortened
    return rounds


@pytest.fixture(params=["local", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def make_transport(request: pytest.FixtureRequest) -> Callable[[], Awaitable[Transport]]:
    """`await make_transport()`: the transport under test, ready to subscribe and publish."""
    if request.param == "local":

        async def local() -> Transport:
            return LocalTransport(schedule=RetrySchedule(RETRY_DELAYS))

        return local
    # Requested only here, so the local case runs (and passes) without a broker.
    factory: RabbitMQFactory = request.getfixturevalue("rabbitmq")
    return functools.partial(factory, batch_linger_seconds=0.02, retry_delays=RETRY_DELAYS)


async def test_published_messages_are_confirmed_and_handled_as_deliveries(
    make_transport: Callable[[], Awaitable[Transport]],
) -> None:
    transport = await make_transport()
    recorder = Recorder()
    await transport.subscribe(ORDER_SIDE_SUBSCRIPTION, recorder)
    messages = [message(n) for n in range(5)]

    confirmed = (await transport.publish(messages)).confirmed

    assert confirmed == {m.message_id for m in messages}
    await eventually(lambda: _settled(recorder, len(messages)), what="all handled")
    for m in messages:
        # Headers are each transport's own (AMQP adds x-delivery-count, for one).
        handled = replace(recorder.handled[str(m.message_id)], headers={})
        assert handled == Delivery(
            message_id=str(m.message_id), routing_key=ROUTED_KEY, body=m.body, redelivered=False
        )
    assert all(isinstance(d, Delivery) for batch in recorder.calls for d in batch)


async def test_a_message_no_one_routes_to_is_not_confirmed(
    make_transport: Callable[[], Awaitable[Transport]],
) -> None:
    transport = await make_transport()
    recorder = Recorder()
    await transport.subscribe(ORDER_SIDE_SUBSCRIPTION, recorder)
    routed, unroutable = message(1), message(2, routing_key="refund.created")

    confirmed = (await transport.publish([routed, unroutable])).confirmed

    assert confirmed == {routed.message_id}  # the return of one does not disturb the other
    await eventually(lambda: _settled(recorder, 1), what="the routed message handled")
    assert set(recorder.handled) == {str(routed.message_id)}


async def test_a_failing_handler_loses_nothing_and_the_message_comes_again(
    make_transport: Callable[[], Awaitable[Transport]],
) -> None:
    transport = await make_transport()
    messages = [message(n) for n in range(3)]
    fails_first = str(messages[1].message_id)
    recorder = Recorder(fail_first={fails_first})
    await transport.subscribe(ORDER_SIDE_SUBSCRIPTION, recorder)

    await publish_like_the_relay(transport, messages)

    await eventually(lambda: _settled(recorder, len(messages)), what="all handled")
    failed_calls = [c for c in recorder.calls if fails_first in {d.message_id for d in c}]
    assert len(failed_calls) >= 2  # it failed, then came back (local: resent; AMQP: retried)
    assert recorder.handled[fails_first].redelivered


async def test_a_message_its_consumer_keeps_failing_on_is_dead_lettered_with_its_verdict(
    make_transport: Callable[[], Awaitable[Transport]],
) -> None:
    transport = await make_transport()
    poison, healthy = message(1), message(2)
    recorder, dead = Recorder(poison={str(poison.message_id)}), Recorder()
    await transport.subscribe(ORDER_SIDE_SUBSCRIPTION, recorder)
    await transport.subscribe_dead_letters(ORDER_SIDE_SUBSCRIPTION, dead)

    await publish_like_the_relay(transport, [poison, healthy])

    await eventually(lambda: _settled(dead, 1), what="the poison message dead-lettered")
    await eventually(lambda: _settled(recorder, 1), what="its neighbour handled")
    assert set(recorder.handled) == {str(healthy.message_id)}  # it held nobody back
    # The first try and one retry per step of the schedule; then given up.
    assert recorder.tries_alone(str(poison.message_id)) == 1 + len(RETRY_DELAYS)
    (letter,) = dead.handled.values()
    assert (letter.message_id, letter.routing_key, letter.body) == (
        str(poison.message_id), ROUTED_KEY, poison.body)
    assert {k: v for k, v in letter.headers.items() if k in VERDICT_HEADERS} == {
        "x-payrelay-reason": "consumer retries exhausted",
        "x-payrelay-error": f"RuntimeError: handler failed on {[str(poison.message_id)]}",
        "x-payrelay-attempts": str(1 + len(RETRY_DELAYS)),
        "x-payrelay-exchange": ORDER_SIDE_SUBSCRIPTION.exchange,
        "x-payrelay-retries": str(len(RETRY_DELAYS)),
        "x-payrelay-routing-key": ROUTED_KEY,
    }


async def test_an_outage_outlasting_the_schedule_is_waited_out_and_never_dead_lettered(
    make_transport: Callable[[], Awaitable[Transport]],
) -> None:
    transport = await make_transport()
    messages = [message(n) for n in range(3)]
    # More failed calls than the schedule has steps: were a wait a step, it would be dead.
    recorder, dead = Recorder(outage=2 * len(RETRY_DELAYS) + 2), Recorder()
    await transport.subscribe(ORDER_SIDE_SUBSCRIPTION, recorder)
    await transport.subscribe_dead_letters(ORDER_SIDE_SUBSCRIPTION, dead)

    await publish_like_the_relay(transport, messages)

    await eventually(lambda: _settled(recorder, len(messages)), what="all handled")
    assert dead.calls == []
    handled = recorder.handled.values()
    assert not any("x-payrelay-retries" in d.headers for d in handled)  # waiting spent no step
    assert any(int(d.headers.get("x-payrelay-waits", "0")) >= 1 for d in handled)


VERDICT_HEADERS = frozenset({
    "x-payrelay-reason", "x-payrelay-error", "x-payrelay-attempts", "x-payrelay-exchange",
    "x-payrelay-retries", "x-payrelay-routing-key",
})


async def _settled(recorder: Recorder, count: int) -> bool:
    return len(recorder.handled) >= count
