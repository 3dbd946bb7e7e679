"""Order side: applies `payment.*` events to orders and answers each with an outcome.

The inbox row and the state change commit in the same transaction, and the transport acks
only after that commit. A redelivered message meets its inbox row and changes nothing but
sends the recorded outcome again, so an answer lost on the way back heals by itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from payrelay.domain.events import Envelope
from payrelay.domain.order import Order, PaymentEventEffect, PaymentRecord, apply_payment_event
from payrelay.failure_log import FailureLog
from payrelay.faults import FaultPoint, Faults
from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION, ORDERS_EXCHANGE
from payrelay.ports import Clock, Delivery, OrdersTx, OrdersUnitOfWork
from payrelay.services.consume_envelope import ConsumerStats, decode_envelope, tell

__all__ = ["PaymentEventConsumer"]


class PaymentEventConsumer:
    """Order side: applies `payment.*` events to orders, answers with an outcome."""

    def __init__(
        self,
        *,
        uow: OrdersUnitOfWork,
        clock: Clock,
        faults: Faults,
        on_committed: asyncio.Event | None = None,
        failure_log: FailureLog | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._faults = faults
        self._on_committed = on_committed
        self._failure_log = failure_log or FailureLog(clock)
        self.stats = ConsumerStats()

    async def handle(self, batch: Sequence[Delivery]) -> None:
        stats = ConsumerStats()
        async with self._uow.begin() as tx:
            for delivery in batch:
                await self._apply(tx, delivery, stats)
            self._faults.check(FaultPoint.ORDER_CONSUMER_BEFORE_COMMIT)
        self.stats.add(stats)
        tell(self._failure_log, stats)
        if self._on_committed is not None:
            self._on_committed.set()
        self._faults.check(FaultPoint.ORDER_CONSUMER_AFTER_COMMIT)

    async def _apply(self, tx: OrdersTx, delivery: Delivery, stats: ConsumerStats) -> None:
        now = self._clock()
        envelope = await decode_envelope(
            delivery, tx.dead_letters, subscription=ORDER_SIDE_SUBSCRIPTION, prefix="payment.",
            now=now, stats=stats,
        )
        if envelope is None:
            stats.dead_lettered += 1
            return
        stats.consumed += 1
        # Lock the order before reading the inbox: a concurrent consumer applying the same
        # message then commits first, and this one finds its inbox row instead of racing it.
        order = await tx.orders.get(envelope.order_id, for_update=True)
        seen = await tx.inbox.seen(envelope.message_id)
        if seen is not None:
            stats.duplicates += 1
            if seen.reply_id is not None:
                await tx.outbox.requeue(seen.reply_id)
            return
        effect = await self._decide(tx, order, envelope)
        if effect.stale:
            stats.stale += 1
        else:
            await tx.orders.save_payment(effect.record)
        if order is not None and effect.order is not None and effect.order != order:
            await tx.orders.save(effect.order, expected_version=order.version, now=now)
        reply_id = await self._answer(tx, effect, envelope, now)
        if effect.displaced is not None and effect.order is not None:
            await self._displace(tx, effect.displaced, effect.order, envelope, now)
        await tx.inbox.add(envelope, received_at=now, reply_id=reply_id)
        step = effect.decided.type.value if effect.decided else f"seen.{envelope.type.value}"
        detail = effect.decided.reason.value if effect.decided and effect.decided.reason else None
        await tx.timeline.record(
            "stale." + envelope.type.value if effect.stale else step,
            at=now,
            order_id=envelope.order_id,
            payment_id=envelope.payment_id,
            detail=detail or (f"order {effect.order.status.value}" if effect.order else None),
        )


    async def _decide(
        self, tx: OrdersTx, order: Order | None, envelope: Envelope
    ) -> PaymentEventEffect:
        record = await tx.orders.get_payment(envelope.payment_id)
        keeper = None
        if order is not None and order.paid_by not in (None, envelope.payment_id):
            assert order.paid_by is not None
            keeper = await tx.orders.get_payment(order.paid_by)
        return apply_payment_event(order, record, envelope, keeper)

    async def _answer(
        self, tx: OrdersTx, effect: PaymentEventEffect, envelope: Envelope, now: datetime
    ) -> uuid.UUID | None:
        """Publish the outcome this event decided, if any; its id goes in the inbox row."""
        if effect.decided is None:
            return None
        reply = replace(
            envelope,
            type=effect.decided.type,
            reason=effect.decided.reason,
            causation_id=envelope.message_id,
            occurred_at=now,
            message_id=uuid.uuid4(),
            order_version=effect.order.version if effect.order else None,
        )
        await tx.outbox.add(reply, exchange=ORDERS_EXCHANGE)
        return reply.message_id

    async def _displace(
        self, tx: OrdersTx, displaced: PaymentRecord, order: Order, cause: Envelope,
        now: datetime,
    ) -> None:
        """The former keeper is now the surplus payment: tell the payments side to refund it."""
        assert displaced.outcome is not None
        await tx.orders.save_payment(displaced)
        reply = Envelope(
            type=displaced.outcome.type,
            reason=displaced.outcome.reason,
            occurred_at=now,
            order_id=order.order_id,
            payment_id=displaced.payment_id,
            provider=cause.provider,
            amount=order.total,  # it paid the order, so it was for the order's total
            payment_version=displaced.last_version,
            correlation_id=f"{cause.provider}:{displaced.payment_id}",
            causation_id=cause.message_id,
            order_version=order.version,
        )
        await tx.outbox.add(reply, exchange=ORDERS_EXCHANGE)
        await tx.inbox.redirect_replies(displaced.payment_id, reply.message_id)
        await tx.timeline.record(
            "order.payment_displaced", at=now, order_id=order.order_id,
            payment_id=displaced.payment_id, detail=f"kept {cause.payment_id}: earlier approval",
        )
