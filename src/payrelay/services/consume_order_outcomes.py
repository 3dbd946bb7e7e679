"""Payments side: records the order side's outcomes (and refund intents) for its payments."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from payrelay.domain.errors import InvalidEnvelope
from payrelay.domain.events import Envelope
from payrelay.domain.refund import MismatchPolicy, RefundAction, action_for
from payrelay.failure_log import FailureLog
from payrelay.faults import FaultPoint, Faults
from payrelay.messaging import PAYMENTS_SIDE_SUBSCRIPTION
from payrelay.ports import Clock, Delivery, PaymentsTx, PaymentsUnitOfWork, RefundRequest
from payrelay.services.consume_envelope import ConsumerStats, decode_envelope, tell

__all__ = ["OrderOutcomeConsumer"]


def _payment_id_of(delivery: Delivery) -> str:
    """For sorting only; an undecodable message sorts first and is dead-lettered."""
    try:
        return Envelope.from_json(delivery.body).payment_id
    except InvalidEnvelope:
        return ""


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
        tell(self._failure_log, stats)

    async def _record(self, tx: PaymentsTx, delivery: Delivery, stats: ConsumerStats) -> None:
        now = self._clock()
        envelope = await decode_envelope(
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
