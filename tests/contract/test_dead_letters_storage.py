"""Everything given up on, as one box (ports/dead_letters.py), on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from payrelay.domain.errors import Conflict
from payrelay.domain.retry import RetryDecision
from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION
from payrelay.ports import Delivery, FailedTry
from tests.contract.builders import AT, envelope, notification, refund_request
from tests.contract.conftest import Storage

LEASE = timedelta(seconds=30)
GIVE_UP = RetryDecision(None, True, "permanent: failed 3 times")


async def test_a_consumers_dead_letter_is_listed_and_replayed_with_its_id(
    storage: Storage,
) -> None:
    message = envelope()
    delivery = Delivery(message_id=str(message.message_id), routing_key="payment.approved",
                        body=message.to_json(), headers={"x-payrelay-attempts": "4"})
    async with storage.orders.begin() as tx:
        await tx.dead_letters.add(delivery, subscription=ORDER_SIDE_SUBSCRIPTION,
                                  reason="failed: retries exhausted", error="boom", at=AT)
    (dead,) = await storage.dead_letters.recent()
    assert dead.id.startswith("orders-")
    assert (dead.message_id, dead.queue, dead.reason, dead.attempts) == (
        str(message.message_id), ORDER_SIDE_SUBSCRIPTION.queue, "failed: retries exhausted", 4)
    assert await storage.dead_letters.get(dead.id) == dead
    assert await storage.dead_letters.replay([dead.id]) == [dead.id]
    assert await storage.dead_letters.recent() == []
    (again,) = await storage.orders_relay.claim_due(limit=10, now=AT, lease=LEASE)
    assert (again.message_id, again.body) == (message.message_id, message.to_json())


async def test_a_dead_notification_is_replayed_from_a_clean_count(storage: Storage) -> None:
    await storage.notification_log.record(notification("1"))
    (claimed,) = await storage.notifications.claim_due(limit=10, now=AT, lease=LEASE)
    await storage.notifications.record_failures([FailedTry(claimed, "x", GIVE_UP)], now=AT)
    (dead,) = await storage.dead_letters.recent()
    assert (dead.id, dead.payment_id) == (f"notification-{claimed.id}", "1")
    await storage.dead_letters.replay([dead.id])
    (again,) = await storage.notifications.claim_due(limit=10, now=AT, lease=LEASE)
    assert (again.id, again.attempts, again.failures) == (claimed.id, 0, 0)


async def test_a_dead_refund_is_money_owed_and_never_purged(storage: Storage) -> None:
    async with storage.payments.begin() as tx:
        await tx.refunds.request(refund_request("1"), hold=False, now=AT)
    (claimed,) = await storage.refunds.claim_due(limit=10, now=AT, lease=LEASE)
    await storage.refunds.record_failures([FailedTry(claimed, "x", GIVE_UP)], now=AT)
    with pytest.raises(Conflict):
        await storage.dead_letters.purge(["refund-1"])
    assert [d.id for d in await storage.dead_letters.recent()] == ["refund-1"]
    await storage.dead_letters.replay(["refund-1"])
    (again,) = await storage.refunds.claim_due(limit=10, now=AT, lease=LEASE)
    assert (again.payment_id, again.attempts, again.failures) == ("1", 0, 0)


async def test_a_purged_dead_letter_is_gone(storage: Storage) -> None:
    await storage.notification_log.record(notification("1"))
    (claimed,) = await storage.notifications.claim_due(limit=10, now=AT, lease=LEASE)
    await storage.notifications.record_failures([FailedTry(claimed, "x", GIVE_UP)], now=AT)
    dead_id = f"notification-{claimed.id}"
    assert await storage.dead_letters.purge([dead_id]) == [dead_id]
    assert await storage.dead_letters.recent() == []
    assert await storage.notifications.claim_due(limit=10, now=AT + timedelta(days=1),
                                                 lease=LEASE) == []
