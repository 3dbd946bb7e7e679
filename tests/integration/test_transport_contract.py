"""One contract, every transport: the in-process fake must promise what RabbitMQ delivers.

"Confirmed" differs in strength (local: the handler committed; RabbitMQ: a durable queue
holds it), so each test drives the transport the way the relay does: publish, and publish
again whatever was not confirmed, with its attempt count raised. What both must guarantee
is then the same: every routable message is eventually handled, a failing handler loses
nothing, and nothing unroutable is confirmed.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

import pytest

from payrelay.adapters.transports.local import LocalTransport
from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION
from payrelay.ports import Delivery, OutboundMessage, Transport
from tests.integration.conftest import RabbitMQFactory
from tests.support import eventually

ROUTED_KEY = "payment.approved"  # matches ORDER_SIDE_SUBSCRIPTION's "payment.*"


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
    delivery (not yet `redelivered`) of a message in `fail_first`."""

    fail_first: set[str] = field(default_factory=set)
    calls: list[list[Delivery]] = field(default_factory=list)
    handled: dict[str, Delivery] = field(default_factory=dict)

    async def __call__(self, batch: Sequence[Delivery]) -> None:
        self.calls.append(list(batch))
        failing = self.fail_first & {d.message_id for d in batch if not d.redelivered}
        if failing:
            raise RuntimeError(f"handler failed on {sorted(failing)}")
        self.handled.update((d.message_id, d) for d in batch)


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
    return rounds


@pytest.fixture(params=["local", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def make_transport(request: pytest.FixtureRequest) -> Callable[[], Awaitable[Transport]]:
    """`await make_transport()`: the transport under test, ready to subscribe and publish."""
    if request.param == "local":

        async def local() -> Transport:
            return LocalTransport()

        return local
    # Requested only here, so the local case runs (and passes) without a broker.
    factory: RabbitMQFactory = request.getfixturevalue("rabbitmq")
    return functools.partial(factory, batch_linger_seconds=0.02, retry_delays=(0.05, 0.1))


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


async def _settled(recorder: Recorder, count: int) -> bool:
    return len(recorder.handled) >= count
