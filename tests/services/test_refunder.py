"""The refunder: an intent stored first, refunded once, its outcome written with a re-fetch."""

from __future__ import annotations

from datetime import timedelta

import httpx

from payrelay.adapters.gateways.mercadopago import MercadoPagoGateway
from payrelay.adapters.gateways.wire import HttpxWire
from payrelay.domain.events import RejectionReason
from payrelay.domain.money import Money
from payrelay.domain.work import NotificationStatus, RefundStatus
from payrelay.ports import RefundRequest
from tests.services.conftest import POLICY, World


async def owe_refund(world: World, payment_id: str) -> None:
    """What the outcome consumer stores for a rejected approval."""
    request = RefundRequest(payment_id=payment_id, provider="mercadopago", order_id="order-1",
                            amount=Money.parse("10.00", "BRL"),
                            reason=RejectionReason.ALREADY_PAID.value)
    async with world.payments.begin() as tx:
        assert await tx.refunds.request(request, hold=False, now=world.clock())


async def test_a_refund_succeeds_once_and_the_payment_is_fetched_again(world: World) -> None:
    payment_id = await world.pay()
    await owe_refund(world, payment_id)
    result = await world.refunder().run_once()
    assert (result.claimed, result.refunded) == (1, 1)
    refund = world.p.refunds[payment_id]
    assert refund.status == RefundStatus.SUCCEEDED and refund.gateway_refund_id
    assert world.mp.simulator.peek_payment(payment_id)["status"] == "refunded"
    (note,) = world.p.notifications.values()
    assert (note.record.resource_id, note.record.action, note.status) == (
        payment_id, "refunder", NotificationStatus.RECEIVED)
    assert note.record.dedupe_key.endswith(f"{payment_id}:refunded")
    assert [(t.step, t.payment_id) for t in world.p.timeline] == [
        ("refund.succeeded", payment_id)]
    world.clock.advance(days=1)
    assert (await world.refunder().run_once()).claimed == 0
    assert len(world.mp.simulator.refunds(payment_id)) == 1


async def test_a_refund_already_made_at_the_gateway_is_not_repeated(world: World) -> None:
    payment_id = await world.pay()
    await world.mp.simulator.refund(payment_id)  # an earlier try whose answer was lost
    await owe_refund(world, payment_id)
    assert (await world.refunder().run_once()).already_covered == 1
    assert world.p.refunds[payment_id].status == RefundStatus.SUCCEEDED
    assert len(world.mp.simulator.refunds(payment_id)) == 1


async def test_a_gateway_outage_is_retried_at_its_backoff(world: World) -> None:
    payment_id = await world.pay()
    await owe_refund(world, payment_id)
    world.mp.wire.cut = {len(world.mp.wire.requests) + 1}
    assert (await world.refunder().run_once()).retried == 1
    refund = world.p.refunds[payment_id]
    base = timedelta(seconds=POLICY.backoff.base)
    assert world.clock() + base / 2 <= refund.next_attempt_at <= world.clock() + base
    assert (refund.status, refund.attempts, refund.failures) == (RefundStatus.REQUESTED, 1, 0)
    world.clock.now = refund.next_attempt_at
    assert (await world.refunder().run_once()).refunded == 1


async def test_a_definite_no_holds_the_refund_for_a_person(world: World) -> None:
    payment_id = await world.pay(outcome="reject")  # nothing captured: nothing to refund
    await owe_refund(world, payment_id)
    assert (await world.refunder().run_once()).held == 1
    refund = world.p.refunds[payment_id]
    assert refund.status == RefundStatus.HELD and refund.last_error
    assert [t.step for t in world.p.timeline] == ["refund.held"]


async def test_refused_credentials_give_up_after_the_permanent_tries(world: World) -> None:
    payment_id = await world.pay()
    await owe_refund(world, payment_id)
    async with httpx.AsyncClient(transport=world.mp.wire,
                                 base_url="http://mercadopago.test") as client:
        refunder = world.refunder(MercadoPagoGateway(HttpxWire(client), access_token="revoked"))
        for _ in range(POLICY.permanent_tries - 1):
            assert (await refunder.run_once()).retried == 1
            world.clock.now = world.p.refunds[payment_id].next_attempt_at
        assert (await refunder.run_once()).dead == 1
    refund = world.p.refunds[payment_id]
    assert (refund.status, refund.failures) == (RefundStatus.DEAD, POLICY.permanent_tries)
    assert refund.last_error is not None
    assert refund.last_error.startswith(f"permanent: failed {POLICY.permanent_tries} times")
    world.clock.advance(days=1)
    assert (await world.refunder().run_once()).claimed == 0
    assert world.mp.simulator.peek_payment(payment_id)["status"] == "approved"
