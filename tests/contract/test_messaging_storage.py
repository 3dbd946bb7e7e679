"""Outbox, inbox and timeline (ports/messaging.py), on both sides, on every backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from payrelay.domain.errors import UnstorableRecord
from payrelay.domain.events import EventType
from payrelay.messaging import ORDERS_EXCHANGE, PAYMENTS_EXCHANGE
from payrelay.ports import InboxEntry, OutboxRelayStore, SeenMessage, TimelineEntry
from tests.contract.builders import AT, envelope
from tests.contract.conftest import Storage

LEASE = timedelta(seconds=30)
SIDES: dict[str, tuple[Callable[[Storage], Any], Callable[[Storage], OutboxRelayStore], str]] = {
    "payments": (lambda s: s.payments, lambda s: s.payments_relay, PAYMENTS_EXCHANGE),
    "orders": (lambda s: s.orders, lambda s: s.orders_relay, ORDERS_EXCHANGE),
}
sides = pytest.mark.parametrize("side", list(SIDES))


@sides
async def test_an_outbox_row_is_claimed_as_it_was_added(storage: Storage, side: str) -> None:
    uow, relay, exchange = SIDES[side]
    message = envelope()
    async with uow(storage).begin() as tx:
        await tx.outbox.add(message, exchange=exchange)
    (claimed,) = await relay(storage).claim_due(limit=10, now=AT, lease=LEASE)
    assert (claimed.message_id, claimed.exchange, claimed.routing_key, claimed.body) == (
        message.message_id, exchange, "payment.approved", message.to_json())
    assert (claimed.correlation_id, claimed.order_id, claimed.payment_id) == (
        message.correlation_id, "order-1", "1000000001")
    assert (claimed.attempts, claimed.created_at) == (0, AT)


@sides
async def test_sent_messages_are_not_claimed_until_requeued(storage: Storage, side: str) -> None:
    uow, relay, exchange = SIDES[side]
    message = envelope()
    async with uow(storage).begin() as tx:
        await tx.outbox.add(message, exchange=exchange)
    (claimed,) = await relay(storage).claim_due(limit=10, now=AT, lease=LEASE)
    await relay(storage).mark_sent([claimed.message_id], now=AT)
    storage.clock.advance(days=1)
    assert await relay(storage).claim_due(limit=10, now=storage.clock(), lease=LEASE) == []
    async with uow(storage).begin() as tx:
        assert await tx.outbox.requeue(message.message_id) is True
        assert await tx.outbox.requeue(uuid.uuid4()) is False
    (again,) = await relay(storage).claim_due(limit=10, now=storage.clock(), lease=LEASE)
    assert again.message_id == message.message_id


@sides
async def test_an_outbox_add_in_a_failed_transaction_is_never_sent(
    storage: Storage, side: str
) -> None:
    uow, relay, exchange = SIDES[side]
    with pytest.raises(RuntimeError):
        async with uow(storage).begin() as tx:
            await tx.outbox.add(envelope(), exchange=exchange)
            raise RuntimeError("crash before commit")
    assert await relay(storage).claim_due(limit=10, now=AT, lease=LEASE) == []


@sides
async def test_the_inbox_remembers_messages_and_their_replies(storage: Storage, side: str) -> None:
    uow = SIDES[side][0]
    first, second, unanswered = envelope("1"), envelope("1", version=2), envelope("1", version=3)
    reply, newer = uuid.uuid4(), uuid.uuid4()
    async with uow(storage).begin() as tx:
        assert await tx.inbox.seen(first.message_id) is None
        await tx.inbox.add(first, received_at=AT, reply_id=reply)
        await tx.inbox.add(second, received_at=AT, reply_id=reply)
        await tx.inbox.add(unanswered, received_at=AT, reply_id=None)
    async with uow(storage).begin() as tx:
        assert await tx.inbox.seen(first.message_id) == SeenMessage(reply)
        await tx.inbox.redirect_replies("1", newer)
    async with uow(storage).begin() as tx:
        assert await tx.inbox.seen(first.message_id) == SeenMessage(newer)
        assert await tx.inbox.seen(second.message_id) == SeenMessage(newer)
        assert await tx.inbox.seen(unanswered.message_id) == SeenMessage(None)


@sides
async def test_timeline_rows_commit_with_their_transaction(storage: Storage, side: str) -> None:
    uow = SIDES[side][0]
    async with uow(storage).begin() as tx:
        await tx.timeline.record("payment.approved", at=AT, order_id="order-1",
                                 payment_id="1", detail="version 1")
    with pytest.raises(RuntimeError):
        async with uow(storage).begin() as tx:
            await tx.timeline.record("lost", at=AT, order_id="order-1", payment_id="1")
            raise RuntimeError("crash before commit")
    assert await storage.timeline("order-1") == [(side, "payment.approved", "version 1")]


async def test_an_outcome_routing_key_is_its_type(storage: Storage) -> None:
    async with storage.orders.begin() as tx:
        await tx.outbox.add(envelope(type=EventType.ORDER_PAYMENT_APPLIED, order_version=2),
                            exchange=ORDERS_EXCHANGE)
    (claimed,) = await storage.orders_relay.claim_due(limit=10, now=AT, lease=LEASE)
    assert claimed.routing_key == "order.payment_applied"


@sides
async def test_a_message_id_is_stored_once(storage: Storage, side: str) -> None:
    """A second row under one id is refused, and takes its transaction down with it."""
    uow, relay, exchange = SIDES[side]
    message = envelope()
    for table in ("outbox", "inbox"):
        with pytest.raises(UnstorableRecord):
            async with uow(storage).begin() as tx:
                await tx.timeline.record("lost", at=AT, order_id="order-1", payment_id="1")
                if table == "outbox":
                    await tx.outbox.add(message, exchange=exchange)
                    await tx.outbox.add(message, exchange=exchange)
                else:
                    await tx.inbox.add(message, received_at=AT, reply_id=None)
                    await tx.inbox.add(message, received_at=AT, reply_id=None)
    assert await relay(storage).claim_due(limit=10, now=AT, lease=LEASE) == []
    assert await storage.timeline("order-1") == []
    async with uow(storage).begin() as tx:
        assert await tx.inbox.seen(message.message_id) is None


@sides
async def test_batches_of_messages_are_stored_and_found_in_one_go(
    storage: Storage, side: str
) -> None:
    uow, relay, exchange = SIDES[side]
    first, second, unseen = envelope("1"), envelope("2"), envelope("3")
    reply = uuid.uuid4()
    async with uow(storage).begin() as tx:
        await tx.outbox.add_many([first, second], exchange=exchange)
        await tx.inbox.add_many([InboxEntry(first, reply), InboxEntry(second, None)],
                                received_at=AT)
        await tx.timeline.record_many([
            TimelineEntry("payment.approved", AT, "order-1", "1", "a"),
            TimelineEntry("payment.approved", AT, "order-1", "2", "b")])
    async with uow(storage).begin() as tx:
        seen = await tx.inbox.seen_many([first.message_id, second.message_id,
                                         unseen.message_id])
    assert dict(seen) == {first.message_id: SeenMessage(reply),
                          second.message_id: SeenMessage(None)}
    claimed = await relay(storage).claim_due(limit=10, now=AT, lease=LEASE)
    assert [m.message_id for m in claimed] == [first.message_id, second.message_id]
    await relay(storage).mark_sent([m.message_id for m in claimed], now=AT)
    async with uow(storage).begin() as tx:
        await tx.outbox.requeue_many([second.message_id])
    (again,) = await relay(storage).claim_due(limit=10, now=AT, lease=LEASE)
    assert again.message_id == second.message_id
    assert await storage.timeline("order-1") == [(side, "payment.approved", "a"),
                                                 (side, "payment.approved", "b")]
