"""The in-process transport's consumer side, on a clock the test moves: the consumer's retry
schedule, dead letters through `subscribe_dead_letters`, and outages that never kill."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from payrelay.adapters.transports.consumer_failures import ConsumerFailures, Refusal
from payrelay.adapters.transports.local import LocalTransport
from payrelay.domain.errors import InvalidEnvelope, StorageUnavailable
from payrelay.domain.retry import FailureKind, RetrySchedule
from payrelay.failure_log import FailureLog
from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION
from payrelay.ports import Delivery, OutboundMessage

DELAYS = (1.0, 5.0)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Handler:
    """Fails any batch holding an id in `poison`; raises `outage` while it is set."""

    poison: set[str] = field(default_factory=set)
    outage: Exception | None = None
    calls: list[list[Delivery]] = field(default_factory=list)
    handled: list[Delivery] = field(default_factory=list)

    async def __call__(self, batch: Sequence[Delivery]) -> None:
        self.calls.append(list(batch))
        if self.outage is not None:
            raise self.outage
        if self.poison & {d.message_id for d in batch}:
            raise RuntimeError("poison")
        self.handled.extend(batch)


def message(n: int) -> OutboundMessage:
    return OutboundMessage(
        message_id=uuid.uuid4(), exchange=ORDER_SIDE_SUBSCRIPTION.exchange,
        routing_key="payment.approved", correlation_id=f"c-{n}",
        body=b'{"order_id": "o-%d", "payment_id": "p-%d"}' % (n, n),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def transport_with(
    clock: Clock, handler: Handler, sink: Handler | None = None
) -> LocalTransport:
    transport = LocalTransport(schedule=RetrySchedule(DELAYS), failure_log=FailureLog(clock),
                               clock=clock)
    await transport.subscribe(ORDER_SIDE_SUBSCRIPTION, handler)
    if sink is not None:
        await transport.subscribe_dead_letters(ORDER_SIDE_SUBSCRIPTION, sink)
    return transport


async def test_a_poison_message_follows_the_schedule_then_is_confirmed_once_stored_dead(
    clock: Clock,
) -> None:
    poison, healthy = message(1), message(2)
    handler, sink = Handler(poison={str(poison.message_id)}), Handler()
    transport = await transport_with(clock, handler, sink)

    first = await transport.publish([poison, healthy])
    assert first.confirmed == {healthy.message_id}  # one poison message holds nobody back
    for delay in DELAYS:
        calls = len(handler.calls)
        clock.advance(delay - 0.1)
        assert (await transport.publish([poison])).confirmed == set()
        assert len(handler.calls) == calls  # not due yet: not delivered, not confirmed
        clock.advance(0.1)
        assert (await transport.publish([poison])).confirmed == (
            set() if delay != DELAYS[-1] else {poison.message_id})
        assert len(handler.calls) == calls + 1
    alone = [c for c in handler.calls if [d.message_id for d in c] == [str(poison.message_id)]]
    assert [c[0].headers.get("x-payrelay-retries") for c in alone] == [None, "1", "2"]
    assert [c[0].redelivered for c in alone] == [False, True, True]
    (letter,) = sink.handled
    assert (letter.message_id, letter.routing_key, letter.body) == (
        str(poison.message_id), "payment.approved", poison.body)
    assert letter.headers == {
        "x-payrelay-reason": "consumer retries exhausted",
        "x-payrelay-error": "RuntimeError: poison",
        "x-payrelay-attempts": "3",
        "x-payrelay-exchange": ORDER_SIDE_SUBSCRIPTION.exchange,
        "x-payrelay-retries": "2",
        "x-payrelay-routing-key": "payment.approved",
    }
    # Its retry state is gone: a replay under the same id starts a fresh schedule.
    assert (await transport.publish([poison])).confirmed == set()
    assert len(sink.handled) == 1


async def test_a_dead_letter_not_stored_stays_unconfirmed_and_is_stored_later(
    clock: Clock,
) -> None:
    poison = message(1)
    handler = Handler(poison={str(poison.message_id)})
    sink = Handler(outage=StorageUnavailable("the consumer's database is down"))
    transport = await transport_with(clock, handler, sink)
    await transport.publish([poison])
    for delay in DELAYS:
        clock.advance(delay)
        await transport.publish([poison])
    tries = len(handler.calls)
    assert len(sink.calls) == 1 and sink.handled == []

    assert (await transport.publish([poison])).confirmed == set()  # kept in the outbox
    sink.outage = None
    assert (await transport.publish([poison])).confirmed == {poison.message_id}
    assert len(handler.calls) == tries  # given up once: the consumer is not asked again
    assert [d.message_id for d in sink.handled] == [str(poison.message_id)]


async def test_without_a_dead_letter_handler_a_dead_message_stays_unconfirmed(
    clock: Clock,
) -> None:
    poison = message(1)
    transport = await transport_with(clock, Handler(poison={str(poison.message_id)}))
    await transport.publish([poison])
    for delay in DELAYS:
        clock.advance(delay)
        assert (await transport.publish([poison])).confirmed == set()
    assert (await transport.publish([poison])).confirmed == set()


async def test_an_outage_holds_the_whole_batch_and_never_dead_letters(clock: Clock) -> None:
    messages = [message(n) for n in range(3)]
    handler = Handler(outage=StorageUnavailable("the consumer's database is down"))
    sink = Handler()
    transport = await transport_with(clock, handler, sink)

    for _ in range(10):  # far past the schedule's two steps
        assert (await transport.publish(messages)).confirmed == set()
        clock.advance(DELAYS[-1])
    assert all(len(call) == len(messages) for call in handler.calls)  # never one by one
    assert len(handler.calls) == 10
    handler.outage = None
    assert (await transport.publish(messages)).confirmed == {m.message_id for m in messages}
    assert sink.calls == []
    assert {d.headers.get("x-payrelay-waits") for d in handler.handled} == {"10"}
    assert not any("x-payrelay-retries" in d.headers for d in handler.handled)


async def test_an_outage_waits_through_the_delays_slower_each_time_up_to_the_last(
    clock: Clock,
) -> None:
    handler = Handler(outage=StorageUnavailable("down"))
    transport = await transport_with(clock, handler)
    m = message(1)
    await transport.publish([m])
    clock.advance(DELAYS[0])
    await transport.publish([m])  # the first wait is the first delay
    for _ in range(3):  # then the last delay, every time
        calls = len(handler.calls)
        clock.advance(DELAYS[-1] - 0.1)
        await transport.publish([m])
        assert len(handler.calls) == calls
        clock.advance(0.1)
        await transport.publish([m])
        assert len(handler.calls) == calls + 1


async def test_a_restart_forgets_the_schedule_and_the_message_starts_it_again(
    clock: Clock,
) -> None:
    poison = message(1)
    handler = Handler(poison={str(poison.message_id)})
    transport = await transport_with(clock, handler, Handler())
    await transport.publish([poison])
    clock.advance(DELAYS[0])
    await transport.publish([poison])

    restarted = await transport_with(clock, handler, Handler())
    await restarted.publish([replace(poison, attempts=2)])
    assert handler.calls[-1][0].headers == {}  # from the first step, not the third


def failures(delays: tuple[float, ...] = DELAYS) -> ConsumerFailures:
    clock = Clock()
    return ConsumerFailures(queue="q", schedule=RetrySchedule(delays),
                            failure_log=FailureLog(clock))


@pytest.mark.parametrize(
    ("kind", "retries", "waits", "expected"),
    [
        (FailureKind.FAILED, 0, 0, (1, 0, 1, 1.0, None)),
        (FailureKind.FAILED, 1, 7, (2, 7, 2, 5.0, None)),
        (FailureKind.FAILED, 2, 0, (2, 0, None, 0.0, "consumer retries exhausted")),
        (FailureKind.UNAVAILABLE, 0, 0, (0, 1, 1, 1.0, None)),
        (FailureKind.UNAVAILABLE, 5, 40, (5, 41, 2, 5.0, None)),  # never dead
        (FailureKind.PERMANENT, 1, 0, (2, 0, 2, 5.0, None)),
        (FailureKind.PERMANENT, 2, 0, (2, 0, None, 0.0, "permanent: failed 3 times")),
    ],
)
def test_the_verdict_on_a_failed_delivery(
    kind: FailureKind, retries: int, waits: int,
    expected: tuple[int, int, int | None, float, str | None],
) -> None:
    verdict = failures().decide(
        Refusal("boom", kind), retries=retries, waits=waits, age=timedelta(0),
        now=datetime(2026, 1, 1, tzinfo=UTC), body=b"{}",
    )
    assert (verdict.retries, verdict.waits, verdict.step, verdict.delay, verdict.reason) == (
        expected)


def test_a_permanent_failure_outlasting_a_short_schedule_stays_on_its_last_step() -> None:
    verdict = failures((1.0,)).decide(
        Refusal("bad", FailureKind.PERMANENT), retries=1, waits=0, age=timedelta(0),
        now=datetime(2026, 1, 1, tzinfo=UTC), body=b"",
    )
    assert (verdict.step, verdict.delay) == (1, 1.0)


def test_a_refusal_keeps_its_kind_and_a_bounded_error() -> None:
    assert Refusal.of(StorageUnavailable("down")).kind is FailureKind.UNAVAILABLE
    assert Refusal.of(InvalidEnvelope("x" * 5000)).kind is FailureKind.PERMANENT
    assert len(Refusal.of(RuntimeError("x" * 5000)).error) == 1000
