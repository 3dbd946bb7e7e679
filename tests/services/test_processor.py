"""The processor over the memory adapters: fetch, apply, commit state and event together."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

import pytest

from payrelay.domain.errors import InjectedFault
from payrelay.domain.payment import PaymentStatus
from payrelay.domain.work import NotificationStatus, OutboxStatus
from payrelay.faults import FaultPoint
from payrelay.simulator.faults import SimulatorFaults
from tests.contract.builders import notification
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


async def test_a_failure_line_names_the_order_once_the_payment_is_stored(
    world: World, caplog: pytest.LogCaptureFixture,
) -> None:
    payment_id = await world.pay()
    await world.notify(payment_id)
    assert (await world.processor().run_once()).events == 1
    await world.notify(payment_id)
    world.mp.wire.cut = {len(world.mp.wire.requests) + 1}
    with caplog.at_level(logging.WARNING, logger="payrelay.failures"):
        assert (await world.processor().run_once()).retried == 1
    (line,) = caplog.records
    assert (line.order_id, line.payment_id, line.correlation_id) == (  # type: ignore[attr-defined]
        "order-1", payment_id, f"mercadopago:{payment_id}")
async def test_each_failed_fetch_is_in_the_timeline_with_its_error_next_try_and_hint(
    world: World,
) -> None:
    """What `payrelay trace` shows while the gateway fails every call (issue 12)."""
    payment_id = await world.pay()
    hinted = dataclasses.replace(notification(payment_id, at=world.clock()),
                                 order_hint="order-1")
    assert await world.log.record(hinted)
    world.mp.simulator.set_faults(SimulatorFaults(api_error_rate=1.0))
    for _ in range(2):
        assert (await world.processor().run_once()).retried == 1
        world.clock.advance(seconds=60)
    world.mp.simulator.set_faults(SimulatorFaults())
    assert (await world.processor().run_once()).applied == 1

    rows = [(t.step, t.order_id, t.payment_id, t.detail or "") for t in world.p.timeline]
    assert [r[0] for r in rows] == ["notification.received", "gateway.fetch_failed",
                                    "gateway.fetch_failed", "gateway.fetched",
                                    "payment.approved"]
    for _step, order_id, pid, detail in rows[1:3]:
        assert order_id is None and pid == payment_id  # the hint is no order id
        assert "HTTP 50" in detail and "next try 20" in detail
        assert detail.endswith("order hint order-1")
    assert "try 1;" in rows[1][3] and "try 2;" in rows[2][3]
    assert rows[3][1] == "order-1" and "status approved" in rows[3][3]


async def test_with_the_gateway_failing_every_call_the_warning_names_the_hinted_order(
    world: World, caplog: pytest.LogCaptureFixture,
) -> None:
    """Never fetched, so never stored: the order id comes from the checkout's hint."""
    payment_id = await world.pay()
    hinted = dataclasses.replace(notification(payment_id, at=world.clock()),
                                 order_hint="order-1")
    assert await world.log.record(hinted)
    world.mp.simulator.set_faults(SimulatorFaults(api_error_rate=1.0))
    with caplog.at_level(logging.WARNING, logger="payrelay.failures"):
        assert (await world.processor().run_once()).retried == 1
    (line,) = caplog.records
    assert line.levelno == logging.WARNING
    assert (line.order_id, line.payment_id) == ("order-1", payment_id)  # type: ignore[attr-defined]
