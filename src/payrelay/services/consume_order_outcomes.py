"""Payments side: records the order side's outcomes (and refund intents) for its payments.

A batch is recorded set-based, as on the order side: its inbox entries are read in one
query, its outcomes written in payment id order (the lock order, see reconciliation.py)
by one statement, its inbox and timeline rows by one each. A rejection's refund intent is
written by itself: rare, and each one must be told.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from datetime import datetime

from payrelay.domain.events import Envelope, EventType
from payrelay.domain.refund import MismatchPolicy, RefundAction, action_for
from payrelay.failure_log import FailureLog
from payrelay.faults import FaultPoint, Faults
from payrelay.messaging import PAYMENTS_SIDE_SUBSCRIPTION
from payrelay.ports import (
    NO_TRACING,
    Clock,
    Delivery,
    InboxEntry,
    PaymentsTx,
    PaymentsUnitOfWork,
    RefundRequest,
    SpanName,
    TimelineEntry,
    Tracing,
)
from payrelay.ports.metrics import Metrics, NoMetrics
from payrelay.services.consume_envelope import ConsumerStats, decode_batch, tell
from payrelay.services.spans import envelope_spans

__all__ = ["OrderOutcomeConsumer"]

_REFUND_RESULTS = {"refund held": "held", "refund requested": "requested"}


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
        tracing: Tracing = NO_TRACING,
        metrics: Metrics | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._faults = faults
        self._mismatch_policy = mismatch_policy
        self._on_refund_requested = on_refund_requested
        self._failure_log = failure_log or FailureLog(clock)
        self._metrics = metrics or NoMetrics()
        self.stats = ConsumerStats()
        self._tracing = tracing

    async def handle(self, batch: Sequence[Delivery]) -> None:
        # Each message's span ends after the batch's commit (or its failure): part of its step.
        with contextlib.ExitStack() as spans:
            await self._handle(batch, spans)

    async def _handle(self, batch: Sequence[Delivery], spans: contextlib.ExitStack) -> None:
        stats = ConsumerStats()
        async with self._uow.begin() as tx:
            now = self._clock()
            envelopes = await decode_batch(
                batch, tx.dead_letters, subscription=PAYMENTS_SIDE_SUBSCRIPTION, prefix="order.",
                now=now, stats=stats,
            )
            spans.enter_context(envelope_spans(self._tracing, SpanName.REPLY, batch, envelopes))
            answers = await self._record(tx, envelopes, now, stats)
            self._faults.check(FaultPoint.OUTCOME_CONSUMER_BEFORE_COMMIT)
        self.stats.add(stats)
        tell(self._failure_log, stats, metrics=self._metrics,
             consumer=PAYMENTS_SIDE_SUBSCRIPTION.queue)
        self._count(answers, stats, now)

    def _count(self, answers: list[Envelope], stats: ConsumerStats, now: datetime) -> None:
        """Once committed: each paid order's wait since its approval, each refund intent."""
        for answer in answers:
            if answer.type is EventType.ORDER_PAYMENT_APPLIED and answer.approved_at:
                # From the approval payrelay stored (the gateway's date_approved) to now.
                waited = (now - answer.approved_at).total_seconds()
                self._metrics.order_paid(seconds_since_approval=waited)
        for step, _, _ in stats.news:
            if step in _REFUND_RESULTS:
                self._metrics.refund_finished(result=_REFUND_RESULTS[step])

    async def _record(
        self, tx: PaymentsTx, envelopes: list[Envelope], now: datetime, stats: ConsumerStats
    ) -> list[Envelope]:
        """Record the batch's new answers; returns them, to count once committed."""
        stats.consumed += len(envelopes)
        seen = await tx.inbox.seen_many([e.message_id for e in envelopes])
        fresh: dict[uuid.UUID, Envelope] = {}
        for envelope in envelopes:
            if envelope.message_id in seen or envelope.message_id in fresh:
                stats.duplicates += 1
            else:
                fresh[envelope.message_id] = envelope
        # Stable sort: a payment's answers keep their arrival order, so the later one wins.
        answers = sorted(fresh.values(), key=lambda e: e.payment_id)
        await tx.payments.record_outcomes(answers, now=now)
        for envelope in answers:
            if envelope.reason is not None:
                await self._compensate(tx, envelope, now, stats)
        await tx.inbox.add_many([InboxEntry(e, None) for e in answers], received_at=now)
        await tx.timeline.record_many([
            TimelineEntry(f"outcome.{e.type.value}", at=now, order_id=e.order_id,
                          payment_id=e.payment_id,
                          detail=e.reason.value if e.reason else None)
            for e in answers
        ])
        return answers

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
            held = action is RefundAction.HOLD
            stats.news.append(("refund held" if held else "refund requested", envelope,
                               f"{envelope.amount} ({envelope.reason.value})"
                               + (": a person decides" if held else "")))
            if self._on_refund_requested is not None and action is RefundAction.REFUND:
                self._on_refund_requested.set()
