"""What the reconciler reads and writes (ports/reconciliation.py), on every backend."""

from __future__ import annotations

from datetime import timedelta

from payrelay.domain.events import EventType
from payrelay.domain.payment import PaymentStatus
from payrelay.messaging import PAYMENTS_EXCHANGE
from payrelay.ports import Checkout
from tests.contract.builders import AT, TEN, envelope, payment
from tests.contract.conftest import Storage

LEASE = timedelta(seconds=30)
SLA = timedelta(minutes=1)


async def approved_and_sent(storage: Storage, payment_id: str = "1") -> None:
    """An approval committed with its event, and the event confirmed by the transport."""
    async with storage.payments.begin() as tx:
        await tx.payments.save(payment(payment_id), expected_version=None, now=storage.clock())
        await tx.outbox.add(envelope(payment_id), exchange=PAYMENTS_EXCHANGE)
    claimed = await storage.payments_relay.claim_due(limit=10, now=storage.clock(), lease=LEASE)
    await storage.payments_relay.mark_sent([m.message_id for m in claimed], now=storage.clock())


async def test_unanswered_approvals_are_listed_once_past_the_sla(storage: Storage) -> None:
    await approved_and_sent(storage, "1")
    await approved_and_sent(storage, "2")
    store = storage.reconciliation
    assert await store.unanswered_approvals(updated_before=AT, limit=10) == []
    later = AT + SLA
    assert sorted(await store.unanswered_approvals(updated_before=later, limit=10)) == ["1", "2"]
    async with storage.payments.begin() as tx:
        answer = envelope("2", type=EventType.ORDER_PAYMENT_APPLIED, order_version=2)
        assert await tx.payments.record_outcome(answer, now=AT)
    assert await store.unanswered_approvals(updated_before=later, limit=10) == ["1"]


async def test_resend_publishes_the_approval_again_and_restarts_the_sla(
    storage: Storage,
) -> None:
    await approved_and_sent(storage, "1")
    storage.clock.advance(minutes=2)
    now = storage.clock()
    assert await storage.reconciliation.resend_approvals(["1"], now=now) == ["1"]
    (again,) = await storage.payments_relay.claim_due(limit=10, now=now, lease=LEASE)
    assert (again.payment_id, again.routing_key) == ("1", "payment.approved")
    assert await storage.reconciliation.unanswered_approvals(updated_before=now,
                                                             limit=10) == []


async def test_an_approval_not_yet_sent_is_not_resent(storage: Storage) -> None:
    async with storage.payments.begin() as tx:
        await tx.payments.save(payment("1"), expected_version=None, now=AT)
        await tx.outbox.add(envelope("1"), exchange=PAYMENTS_EXCHANGE)
    assert await storage.reconciliation.resend_approvals(["1"], now=AT) == []


async def test_checkouts_are_verified_once_old_enough(storage: Storage) -> None:
    checkout = Checkout(order_id="order-1", provider="mercadopago", preference_id="p",
                        init_point="https://pay.test/p", amount=TEN)
    async with storage.payments.begin() as tx:
        await tx.checkouts.add(checkout, now=AT)
    store, old = storage.reconciliation, AT + timedelta(minutes=5)
    window = {"created_after": AT - timedelta(days=2), "limit": 10}
    assert await store.checkouts_to_verify(created_before=AT, **window) == []
    assert await store.checkouts_to_verify(created_before=old, **window) == ["order-1"]
    await store.mark_verified("order-1", now=old)
    assert await store.checkouts_to_verify(created_before=old, **window) == []
    # Still no approved payment a window later: searched again.
    again = old + timedelta(minutes=5, seconds=1)
    assert await store.checkouts_to_verify(created_before=again, **window) == ["order-1"]
    async with storage.payments.begin() as tx:
        await tx.payments.save(payment("1"), expected_version=None, now=AT)
    assert await store.checkouts_to_verify(created_before=again, **window) == []


async def test_known_updates_and_unsettled_payments(storage: Storage) -> None:
    async with storage.payments.begin() as tx:
        await tx.payments.save(payment("1"), expected_version=None, now=AT)
        pending = payment("2", PaymentStatus.PENDING, updated=AT + timedelta(seconds=5))
        await tx.payments.save(pending, expected_version=None, now=AT)
    store = storage.reconciliation
    assert await store.known_updates(["1", "2", "3"]) == {
        "1": AT, "2": AT + timedelta(seconds=5)}
    assert await store.known_updates([]) == {}
    assert await store.unsettled(updated_before=AT, limit=10) == []
    assert await store.unsettled(updated_before=AT + timedelta(minutes=5), limit=10) == ["2"]


async def test_the_sweep_watermark_never_moves_back(storage: Storage) -> None:
    store = storage.reconciliation
    assert await store.sweep_watermark("mercadopago") is None
    await store.advance_sweep_watermark("mercadopago", AT, now=AT)
    await store.advance_sweep_watermark("mercadopago", AT - timedelta(hours=1), now=AT)
    assert await store.sweep_watermark("mercadopago") == AT
    await store.advance_sweep_watermark("mercadopago", AT + timedelta(hours=1), now=AT)
    assert await store.sweep_watermark("mercadopago") == AT + timedelta(hours=1)
    assert await store.sweep_watermark("other") is None


async def test_a_report_is_saved(storage: Storage) -> None:
    await storage.reconciliation.save_report({"resent_approvals": ["1"]}, started_at=AT,
                                             finished_at=AT + timedelta(seconds=1))
