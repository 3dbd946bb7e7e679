"""The payments database's rules (ports/payments.py), on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from payrelay.domain.errors import ConcurrentUpdate
from payrelay.domain.events import Envelope, EventType, RejectionReason
from payrelay.domain.money import Money
from payrelay.domain.payment import PaymentStatus
from payrelay.ports import Checkout
from tests.contract.builders import AT, TEN, envelope, notification, payment, refund_request
from tests.contract.conftest import Storage

LEASE = timedelta(seconds=30)


def checkout(preference: str, order_id: str = "order-1") -> Checkout:
    return Checkout(order_id=order_id, provider="mercadopago", preference_id=preference,
                    init_point=f"https://pay.test/{preference}", amount=TEN)


async def test_a_dedupe_key_is_recorded_once(storage: Storage) -> None:
    first = notification(key="mp:payment:1:created")
    assert await storage.notification_log.record(first) is True
    assert await storage.notification_log.record(first) is False
    async with storage.payments.begin() as tx:
        assert await tx.notifications.record(first) is False
    assert len(await storage.notifications.claim_due(limit=10, now=AT, lease=LEASE)) == 1


async def test_a_duplicate_leaves_the_first_rows_due_time(storage: Storage) -> None:
    later = AT + timedelta(minutes=5)
    assert await storage.notification_log.record(notification(key="k", due_at=later))
    assert not await storage.notification_log.record(notification(key="k", due_at=AT))
    assert await storage.notifications.claim_due(limit=10, now=AT, lease=LEASE) == []
    assert len(await storage.notifications.claim_due(limit=10, now=later, lease=LEASE)) == 1


async def test_ignored_and_processed_notifications_are_never_claimed(storage: Storage) -> None:
    await storage.notification_log.record(notification("1", ignored=True))
    await storage.notification_log.record(notification("2"))
    (claimed,) = await storage.notifications.claim_due(limit=10, now=AT, lease=LEASE)
    assert claimed.resource_id == "2"
    async with storage.payments.begin() as tx:
        await tx.notifications.mark_processed([claimed.id], now=AT)
    later = AT + timedelta(days=1)
    assert await storage.notifications.claim_due(limit=10, now=later, lease=LEASE) == []


async def test_postpone_makes_it_due_later_without_counting_a_try(storage: Storage) -> None:
    await storage.notification_log.record(notification("1"))
    (claimed,) = await storage.notifications.claim_due(limit=10, now=AT, lease=LEASE)
    until = AT + timedelta(minutes=2)
    await storage.notifications.postpone([claimed.id], until=until)
    assert await storage.notifications.claim_due(limit=10, now=until - timedelta(seconds=1),
                                                 lease=LEASE) == []
    (again,) = await storage.notifications.claim_due(limit=10, now=until, lease=LEASE)
    assert (again.attempts, again.failures, again.received_at) == (0, 0, AT)


async def test_a_transaction_that_raises_leaves_nothing(storage: Storage) -> None:
    with pytest.raises(RuntimeError):
        async with storage.payments.begin() as tx:
            await tx.notifications.record(notification(key="k"))
            await tx.payments.save(payment(), expected_version=None, now=AT)
            raise RuntimeError("crash before commit")
    async with storage.payments.begin() as tx:
        assert await tx.payments.get("1000000001") is None
        assert await tx.notifications.record(notification(key="k")) is True


async def test_payments_save_checks_the_version_read(storage: Storage) -> None:
    async with storage.payments.begin() as tx:
        await tx.payments.save(payment(version=1), expected_version=None, now=AT)
    async with storage.payments.begin() as tx:
        assert await tx.payments.get("1000000001") == payment(version=1)
        with pytest.raises(ConcurrentUpdate):  # a racing processor that found no payment
            await tx.payments.save(payment(version=1), expected_version=None, now=AT)
        refunded = payment(status=PaymentStatus.REFUNDED, version=2,
                           updated=AT + timedelta(minutes=1))
        await tx.payments.save(refunded, expected_version=1, now=AT)
    async with storage.payments.begin() as tx:
        with pytest.raises(ConcurrentUpdate):
            await tx.payments.save(payment(version=2), expected_version=1, now=AT)
        assert await tx.payments.get("1000000001") == refunded


async def test_payments_save_of_a_version_never_stored_writes_nothing(storage: Storage) -> None:
    """`expected_version=1` says "I read version 1": with no row there, someone else's
    story is being overwritten (or the row was never there), so nothing is written."""
    async with storage.payments.begin() as tx:
        with pytest.raises(ConcurrentUpdate):
            await tx.payments.save(payment(version=2), expected_version=1, now=AT)
        assert await tx.payments.get("1000000001") is None


async def test_a_lost_race_leaves_the_rest_of_the_transaction(storage: Storage) -> None:
    """The processor catches ConcurrentUpdate and commits the batch's other payments."""
    async with storage.payments.begin() as tx:
        await tx.payments.save(payment("1"), expected_version=None, now=AT)
    async with storage.payments.begin() as tx:
        with pytest.raises(ConcurrentUpdate):
            await tx.payments.save(payment("1", version=1), expected_version=None, now=AT)
        await tx.payments.save(payment("2"), expected_version=None, now=AT)
    async with storage.payments.begin() as tx:
        assert await tx.payments.get("2") == payment("2")


async def test_an_older_outcome_never_overwrites_a_newer(storage: Storage) -> None:
    async with storage.payments.begin() as tx:
        assert not await tx.payments.record_outcome(envelope(type=EventType.ORDER_PAYMENT_APPLIED,
                                                             order_version=2), now=AT)
        await tx.payments.save(payment(), expected_version=None, now=AT)

    async def record(version: int) -> bool:
        async with storage.payments.begin() as tx:
            answer = envelope(type=EventType.ORDER_PAYMENT_REJECTED, order_version=version,
                              reason=RejectionReason.ALREADY_PAID)
            return await tx.payments.record_outcome(answer, now=AT)

    assert await record(3) is True
    assert await record(2) is False
    assert await record(3) is True  # the same decision again: not older
    assert await record(4) is True

    def answer(version: int) -> Envelope:
        return envelope(type=EventType.ORDER_PAYMENT_APPLIED, order_version=version)

    async with storage.payments.begin() as tx:  # a batch, in arrival order
        await tx.payments.record_outcomes([answer(6), answer(5)], now=AT)
    assert await record(5) is False  # 6 stayed: the later-arriving 5 was older
    async with storage.payments.begin() as tx:
        await tx.payments.record_outcomes([answer(7), answer(8)], now=AT)
    assert await record(7) is False


async def test_one_refund_per_payment(storage: Storage) -> None:
    async with storage.payments.begin() as tx:
        assert await tx.refunds.request(refund_request(), hold=False, now=AT) is True
        other = refund_request(order_id="order-2")
        assert await tx.refunds.request(other, hold=True, now=AT) is False
    (claimed,) = await storage.refunds.claim_due(limit=10, now=AT, lease=LEASE)
    assert (claimed.order_id, claimed.amount, claimed.created_at) == ("order-1", TEN, AT)


async def test_held_and_finished_refunds_are_never_claimed(storage: Storage) -> None:
    async with storage.payments.begin() as tx:
        await tx.refunds.request(refund_request("1"), hold=True, now=AT)
        for payment_id in ("2", "3"):
            await tx.refunds.request(refund_request(payment_id), hold=False, now=AT)
    async with storage.payments.begin() as tx:
        await tx.refunds.hold(refund_request("2"), error="gateway refused", now=AT)
        await tx.refunds.mark_succeeded(refund_request("3"), gateway_refund_id="r-3", now=AT)
    assert await storage.refunds.claim_due(limit=10, now=AT + timedelta(days=1),
                                           lease=LEASE) == []


async def test_checkouts_add_returns_the_first_stored(storage: Storage) -> None:
    async with storage.payments.begin() as tx:
        assert await tx.checkouts.add(checkout("pref-1"), now=AT) == checkout("pref-1")
    async with storage.payments.begin() as tx:
        assert await tx.checkouts.add(checkout("pref-2"), now=AT) == checkout("pref-1")
        assert await tx.checkouts.get("order-1") == checkout("pref-1")
        assert await tx.checkouts.get("order-2") is None


async def test_a_stored_payment_keeps_every_field(storage: Storage) -> None:
    stored = payment(status=PaymentStatus.PENDING, order_id=None)
    async with storage.payments.begin() as tx:
        await tx.payments.save(stored, expected_version=None, now=AT)
    async with storage.payments.begin() as tx:
        found = await tx.payments.get(stored.payment_id)
    assert found == stored
    assert found is not None and found.snapshot.amount_refunded == Money.parse("0", "BRL")
