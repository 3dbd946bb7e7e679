"""The reconciler: finds what fell through by asking the gateway, and records, never applies."""

from __future__ import annotations

from datetime import timedelta

from payrelay.domain.work import OutboxStatus
from payrelay.services.reconcile import ReconcilePolicy
from tests.services.conftest import World


async def test_a_payment_the_gateway_has_and_payrelay_does_not_is_notified(
    world: World,
) -> None:
    payment_id = await world.pay()  # its webhook is lost: no notification URL
    report = await world.reconciler().run_once()
    assert report.lost_payments_found == [payment_id] and report.sweep_complete
    (note,) = world.p.notifications.values()
    assert (note.record.resource_id, note.record.action) == (payment_id, "reconciler")
    assert world.p.sweep_watermarks["mercadopago"] is not None
    assert world.p.reports[-1].report["lost_payments_found"] == [payment_id]

    world.clock.advance(seconds=30)
    assert (await world.reconciler().run_once()).lost_payments_found == []  # recorded once
    await world.processor().run_once()
    world.clock.advance(minutes=5)
    assert (await world.reconciler().run_once()).lost_payments_found == []  # known now


async def test_an_unanswered_approval_is_sent_again_once_past_its_sla(world: World) -> None:
    payment_id = await world.pay()
    await world.notify(payment_id)
    await world.processor().run_once()
    (message,) = await world.payments.relay_store.claim_due(limit=10, now=world.clock(),
                                                            lease=timedelta(seconds=30))
    await world.payments.relay_store.mark_sent([message.message_id], now=world.clock())
    policy = ReconcilePolicy(outcome_sla=timedelta(minutes=1))
    assert (await world.reconciler(policy).run_once()).resent_approvals == []
    world.clock.advance(minutes=2)
    assert (await world.reconciler(policy).run_once()).resent_approvals == [payment_id]
    (row,) = world.p.outbox.values()
    assert (row.message_id, row.status) == (message.message_id, OutboxStatus.PENDING)
    assert (await world.reconciler(policy).run_once()).resent_approvals == []  # SLA restarted
    resent = [t for t in world.p.timeline if t.step == "reconciler.resent_approval"]
    assert [t.payment_id for t in resent] == [payment_id]  # once, as it was re-sent once


async def test_an_unsettled_payment_is_fetched_again(world: World) -> None:
    payment_id = await world.pay(outcome="pending")
    await world.notify(payment_id)
    await world.processor().run_once()
    world.clock.advance(minutes=6)
    report = await world.reconciler().run_once()
    assert report.unsettled_refetched == [payment_id]
    assert [n.record.action for n in world.p.notifications.values()][-1] == "reconciler"
