"""Consumers: the order side applies payment events, the payments side records outcomes.

Both follow one rule: the inbox row and the state change commit in the same transaction,
and the transport acks only after that commit. A redelivered message meets its inbox row
and changes nothing; on the order side it also sends the recorded outcome again, so an
answer lost on the way back heals by itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from payrelay.domain.errors import InvalidEnvelope
from payrelay.domain.events import Envelope
from payrelay.domain.order import Order, PaymentEventEffect, PaymentRecord, apply_payment_event
from payrelay.domain.refund import MismatchPolicy, RefundAction, action_for
from payrelay.failure_log import FailureLog
from payrelay.faults import FaultPoint, Faults
from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION, ORDERS_EXCHANGE, PAYMENTS_SIDE_SUBSCRIPTION
from payrelay.ports import (
    Clock,
    DeadLetters,
    Delivery,
    OrdersTx,
    OrdersUnitOfWork,
    PaymentsTx,
    PaymentsUnitOfWork,
    RefundRequest,
    Subscription,
)


@dataclass
class ConsumerStats:
    consumed: int = 0
    duplicates: int = 0
    stale: int = 0
    dead_lettered: int = 0
    news: list[tuple[str, str | None, str | None, str]] = field(default_factory=list)
    """(step, order id, payment id, detail) for a person, logged once the batch commits."""

    def add(self, other: ConsumerStats) -> None:
        self.consumed += other.consumed
        self.duplicates += other.duplicates
        self.stale += other.stale
        self.dead_lettered += other.dead_lettered


def _tell(failure_log: FailureLog, stats: ConsumerStats) -> None:
    """Log what a committed batch did that a person should hear of."""
    for step, order_id, payment_id, detail in stats.news:
        failure_log.event(step, order_id=order_id, payment_id=payment_id, detail=detail)


async def _decode(
    delivery: Delivery,
    dead_letters: DeadLetters,
    *,
    subscription: Subscription,
    prefix: str,
    now: datetime,
    stats: ConsumerStats,
) -> Envelope | None:
    """The envelope, or None after storing an undecodable message as a dead letter.

    A body that cannot be decoded will never decode: retrying it would only block the
    messages behind it, so it is kept with its reason instead.
    """
    try:
        envelope = Envelope.from_json(delivery.body)
        if not envelope.type.value.startswith(prefix):
            raise InvalidEnvelope(f"unexpected event type {envelope.type.value}")
    except InvalidEnvelope as exc:
        await dead_letters.add(
            delivery,
            subscription=subscription,
            reason="permanent: undecodable message",
            error=str(exc),
            at=now,
        )
        stats.news.append(("dead letter", None, None, (
            f"message_id={delivery.message_id} routing_key={delivery.routing_key} "
            f"reason='permanent: undecodable message' error={str(exc)[:200]!r}")))
        return None
    return envelope


def _payment_id_of(delivery: Delivery) -> str:
    """For sorting only; an undecodable message sorts first and is dead-lettered."""
    try:
        return Envelope.from_json(delivery.body).payment_id
    except InvalidEnvelope:
        return ""


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
        _tell(self._failure_log, stats)
        if self._on_committed is not None:
            self._on_committed.set()
        self._faults.check(FaultPoint.ORDER_CONSUMER_AFTER_COMMIT)

    async def _apply(self, tx: OrdersTx, delivery: Delivery, stats: ConsumerStats) -> None:
        now = self._clock()
        envelope = await _decode(
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


class OrderOutcomeConsumer:
    """Payments side: records what the order side decided, so it knows the order saw it.

    A rejected payment gets its refund intent (or hold) in the same transaction: once the
    answer is recorded, compensation cannot be forgotten.
    """

    def __init__(
        self,
        *,
        uow: PaymentsUnitOfWork,
        clock: Clock,
        faults: Faults,
        mismatch_policy: MismatchPolicy = MismatchPolicy.HOLD,
        on_refund_requested: asyncio.Event | None = None,
        failure_log: FailureLog | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._faults = faults
        self._mismatch_policy = mismatch_policy
        self._on_refund_requested = on_refund_requested
        self._failure_log = failure_log or FailureLog(clock)
        self.stats = ConsumerStats()

    async def handle(self, batch: Sequence[Delivery]) -> None:
        stats = ConsumerStats()
        async with self._uow.begin() as tx:
            # Lock order: payments rows in ascending payment_id (see reconciliation.py).
            for delivery in sorted(batch, key=_payment_id_of):
                await self._record(tx, delivery, stats)
            self._faults.check(FaultPoint.OUTCOME_CONSUMER_BEFORE_COMMIT)
        self.stats.add(stats)
        _tell(self._failure_log, stats)

    async def _record(self, tx: PaymentsTx, delivery: Delivery, stats: ConsumerStats) -> None:
        now = self._clock()
        envelope = await _decode(
            delivery, tx.dead_letters, subscription=PAYMENTS_SIDE_SUBSCRIPTION, prefix="order.",
            now=now, stats=stats,
        )
        if envelope is None:
            stats.dead_lettered += 1
            return
        stats.consumed += 1
        if await tx.inbox.seen(envelope.message_id) is not None:
            stats.duplicates += 1
            return
        await tx.payments.record_outcome(envelope, now=now)
        if envelope.reason is not None:
            await self._compensate(tx, envelope, now, stats)
        await tx.inbox.add(envelope, received_at=now, reply_id=None)
        await tx.timeline.record(
            f"outcome.{envelope.type.value}",
            at=now,
            order_id=envelope.order_id,
            payment_id=envelope.payment_id,
            detail=envelope.reason.value if envelope.reason else None,
        )

    async def _compensate(
        self, tx: PaymentsTx, envelope: Envelope, now: datetime, stats: ConsumerStats
    ) -> None:
        assert envelope.reason is not None
        action = action_for(envelope.reason, self._mismatch_policy)
        request = RefundRequest(
            payment_id=envelope.payment_id,
            provider=envelope.provider,
            order_id=envelope.order_id,
            amount=envelope.amount,
            reason=envelope.reason.value,
        )
        if await tx.refunds.request(request, hold=action is RefundAction.HOLD, now=now):
            await tx.timeline.record(
                f"refund.{'held' if action is RefundAction.HOLD else 'requested'}",
                at=now,
                order_id=envelope.order_id,
                payment_id=envelope.payment_id,
                detail=f"{envelope.amount} ({envelope.reason.value})",
            )
            if action is RefundAction.HOLD:
                stats.news.append(("refund held", envelope.order_id, envelope.payment_id,
                                   f"{envelope.amount} ({envelope.reason.value}): a person "
                                   "decides"))
            if self._on_refund_requested is not None and action is RefundAction.REFUND:
                self._on_refund_requested.set()
