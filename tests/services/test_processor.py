"""The processor over the memory adapters: fetch, apply, commit state and event together."""

from __future__ import annotations

from datetime import timedelta

import pytest

from payrelay.domain.errors import InjectedFault
from payrelay.domain.payment import PaymentStatus
from payrelay.domain.work import NotificationStatus, OutboxStatus
from payrelay.faults import FaultPoint
from tests.services.conftest import LEASE, POLICY, World


async def test_a_notified_payment_is_stored_with_its_event(world: World) -> None:
    payment_id = await world.pay()
    await world.notify(payment_id)
    result = await world.processor().run_once()
    assert (result.claimed, result.applied, result.events) == (1, 1, 1)
    stored = world.p.payments[payment_id].payment
    assert (stored.status, stored.version, stored.snapshot.order_id) == (
        PaymentStatus.APPROVED, 1, "order-1")
    (row,) = world.p.outbox.values()
    assert (row.routing_key, row.payment_id, row.status) == (
        "payment.approved", payment_id, OutboxStatus.PENDING)
    (note,) = world.p.notifications.values()
    assert note.status == NotificationStatus.PROCESSED
    assert [t.step for t in world.p.timeline] == [
        "notification.received", "gateway.fetched", "payment.approved"]


async def test_a_crash_before_commit_leaves_nothing_and_the_notification_due(
    world: World,
) -> None:
    payment_id = await world.pay()
    await world.notify(payment_id)
    world.faults.arm(FaultPoint.PROCESSOR_BEFORE_COMMIT)
    with pytest.raises(InjectedFault):
        await world.processor().run_once()
    assert world.p.payments == {} and world.p.outbox == {}
    assert [t.step for t in world.p.timeline] == ["notification.received"]  # the rest rolled back
    world.clock.advance(seconds=LEASE.total_seconds())
    assert (await world.processor().run_once()).events == 1


async def test_a_gateway_outage_is_retried_at_its_backoff(world: World) -> None:
    payment_id = await world.pay()
    await world.notify(payment_id)
    world.mp.wire.cut = {len(world.mp.wire.requests) + 1}  # the next request never arrives
    result = await world.processor().run_once()
    assert (result.retried, result.dead) == (1, 0)
    (note,) = world.p.notifications.values()
    base = timedelta(seconds=POLICY.backoff.base)
    assert world.clock() + base / 2 <= note.next_attempt_at <= world.clock() + base
    assert (note.status, note.attempts, note.failures) == (NotificationStatus.RECEIVED, 1, 0)
    assert note.last_error is not None and note.last_error.startswith("GatewayUnavailable")
    world.clock.now = note.next_attempt_at
    assert (await world.processor().run_once()).events == 1
    assert world.p.payments[payment_id].payment.status is PaymentStatus.APPROVED


async def test_a_payment_the_gateway_never_shows_is_given_up_after_the_grace(
    world: World,
) -> None:
    await world.notify("1999999999")
    processor = world.processor()
    assert (await processor.run_once()).retried == 1  # maybe not visible yet: wait
    world.clock.advance(minutes=11)
    result = await processor.run_once()
    assert (result.retried, result.dead) == (0, 1)
    (note,) = world.p.notifications.values()
    assert note.status == NotificationStatus.DEAD
    assert note.last_error is not None and note.last_error.startswith("not_visible:")
    world.clock.advance(days=1)
    assert (await processor.run_once()).claimed == 0


async def test_one_fetch_per_interval_postpones_the_next_notification(world: World) -> None:
    payment_id = await world.pay()
    processor = world.processor(fetch_interval=timedelta(minutes=1))
    await world.notify(payment_id)
    fetched_at = world.clock()
    await processor.run_once()
    world.clock.advance(seconds=10)
    await world.notify(payment_id)
    assert (await processor.run_once()).applied == 0
    second = max(world.p.notifications.values(), key=lambda n: n.id)
    assert (second.status, second.next_attempt_at, second.attempts) == (
        NotificationStatus.RECEIVED, fetched_at + timedelta(minutes=1), 0)


async def test_a_refreshed_payment_changes_its_version_and_sends_one_event(
    world: World,
) -> None:
    payment_id = await world.pay()
    await world.notify(payment_id)
    await world.processor().run_once()
    world.clock.advance(seconds=5)
    await world.mp.simulator.refund(payment_id)
    await world.notify(payment_id)
    assert (await world.processor().run_once()).events == 1
    stored = world.p.payments[payment_id].payment
    assert (stored.status, stored.version) == (PaymentStatus.REFUNDED, 2)
    assert [r.routing_key for r in world.p.outbox.values()] == [
        "payment.approved", "payment.refunded"]
