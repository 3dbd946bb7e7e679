"""Order side: applies `payment.*` events to orders and answers each with an outcome.

The inbox row and the state change commit in the same transaction, and the transport acks
only after that commit. A redelivered message meets its inbox row and changes nothing but
sends the recorded outcome again, so an answer lost on the way back heals by itself.

A batch is applied set-based: its orders are locked and read, its inbox entries and payment
records read, in one statement each; every event is then decided in memory, in arrival
order, each seeing what the ones before it did (two events for one order in one batch);
and what they decided is written with one statement per table. So a batch of 200 costs
about as many statements as one message did, and a slow order database slows a batch, not
each message of it. A batch that fails as a whole is tried message by message by the
transport (consumer_failures.failures_in), so one bad message does not hold the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from payrelay.domain.events import Envelope
from payrelay.domain.order import Order, PaymentEventEffect, PaymentRecord, apply_payment_event
from payrelay.failure_log import FailureLog
from payrelay.faults import FaultPoint, Faults
from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION, ORDERS_EXCHANGE
from payrelay.ports import (
    NO_TRACING,
    Clock,
    Delivery,
    InboxEntry,
    OrdersTx,
    OrdersUnitOfWork,
    OrderUpdate,
    SpanName,
    TimelineEntry,
    Tracing,
)
from payrelay.ports.metrics import Metrics, NoMetrics
from payrelay.services.consume_envelope import ConsumerStats, decode_batch, tell, tell_decided
from payrelay.services.spans import envelope_spans

__all__ = ["PaymentEventConsumer"]


@dataclass
class _Batch:
    """One batch's orders and payment records as its events leave them, and its writes."""

    now: datetime
    orders: dict[str, Order]
    records: dict[str, PaymentRecord]
    read_versions: dict[str, int] = field(default_factory=dict)
    changed_orders: dict[str, Order] = field(default_factory=dict)
    changed_records: dict[str, PaymentRecord] = field(default_factory=dict)
    replies: list[Envelope] = field(default_factory=list)
    inbox: list[InboxEntry] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.read_versions = {o.order_id: o.version for o in self.orders.values()}

    def keeper_of(self, order: Order | None, payment_id: str) -> PaymentRecord | None:
        if order is None or order.paid_by in (None, payment_id):
            return None
        assert order.paid_by is not None
        return self.records.get(order.paid_by)

    def store_record(self, record: PaymentRecord) -> None:
        self.records[record.payment_id] = self.changed_records[record.payment_id] = record

    def store_order(self, order: Order) -> None:
        self.orders[order.order_id] = self.changed_orders[order.order_id] = order

    async def write(self, tx: OrdersTx) -> None:
        await tx.orders.save_payments(list(self.changed_records.values()))
        await tx.orders.save_many([
            OrderUpdate(order, self.read_versions[order_id])
            for order_id, order in self.changed_orders.items()
        ], now=self.now)
        await tx.outbox.add_many(self.replies, exchange=ORDERS_EXCHANGE)
        await tx.inbox.add_many(self.inbox, received_at=self.now)
        await tx.timeline.record_many(self.timeline)


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
        tracing: Tracing = NO_TRACING,
        metrics: Metrics | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._faults = faults
        self._on_committed = on_committed
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
                batch, tx.dead_letters, subscription=ORDER_SIDE_SUBSCRIPTION, prefix="payment.",
                now=now, stats=stats,
            )
            spans.enter_context(envelope_spans(self._tracing, SpanName.CONSUME, batch, envelopes))
            decided = await self._apply(tx, envelopes, now, stats)
            self._faults.check(FaultPoint.ORDER_CONSUMER_BEFORE_COMMIT)
        self.stats.add(stats)
        tell(self._failure_log, stats, metrics=self._metrics,
             consumer=ORDER_SIDE_SUBSCRIPTION.queue)
        tell_decided(decided)
        if self._on_committed is not None:
            self._on_committed.set()
        self._faults.check(FaultPoint.ORDER_CONSUMER_AFTER_COMMIT)

    async def _apply(
        self, tx: OrdersTx, envelopes: list[Envelope], now: datetime, stats: ConsumerStats
    ) -> list[Envelope]:
        """Decide and write the batch; returns the outcomes it decided, to tell once committed."""
        stats.consumed += len(envelopes)
        # Lock the orders before reading the inbox: a concurrent consumer applying the same
        # message then commits first, and this one finds its inbox row instead of racing it.
        orders = await tx.orders.get_many([e.order_id for e in envelopes], for_update=True)
        fresh = await self._unseen(tx, envelopes, stats)
        keepers = [o.paid_by for o in orders.values() if o.paid_by is not None]
        records = await tx.orders.get_payments([e.payment_id for e in fresh] + keepers)
        batch = _Batch(now, dict(orders), dict(records))
        for envelope in fresh:
            await self._decide(tx, batch, envelope, stats)
        await batch.write(tx)
        return batch.replies

    async def _unseen(
        self, tx: OrdersTx, envelopes: list[Envelope], stats: ConsumerStats
    ) -> list[Envelope]:
        """The envelopes not applied before; a repeat sends its recorded outcome again."""
        seen = await tx.inbox.seen_many([e.message_id for e in envelopes])
        fresh: dict[uuid.UUID, Envelope] = {}
        again: list[uuid.UUID] = []
        for envelope in envelopes:
            entry = seen.get(envelope.message_id)
            if entry is None and envelope.message_id not in fresh:
                fresh[envelope.message_id] = envelope
                continue
            stats.duplicates += 1  # a copy in this very batch is answered by the first
            if entry is not None and entry.reply_id is not None:
                again.append(entry.reply_id)
        await tx.outbox.requeue_many(again)
        return list(fresh.values())

    async def _decide(
        self, tx: OrdersTx, batch: _Batch, envelope: Envelope, stats: ConsumerStats
    ) -> None:
        order = batch.orders.get(envelope.order_id)
        effect = apply_payment_event(
            order, batch.records.get(envelope.payment_id), envelope,
            batch.keeper_of(order, envelope.payment_id),
        )
        if effect.stale:
            stats.stale += 1
        else:
            batch.store_record(effect.record)
        if order is not None and effect.order is not None and effect.order != order:
            batch.store_order(effect.order)
        reply_id = self._answer(batch, effect, envelope)
        if effect.displaced is not None and effect.order is not None:
            await self._displace(tx, batch, effect.displaced, effect.order, envelope)
        batch.inbox.append(InboxEntry(envelope, reply_id))
        step = effect.decided.type.value if effect.decided else f"seen.{envelope.type.value}"
        detail = effect.decided.reason.value if effect.decided and effect.decided.reason else None
        batch.timeline.append(TimelineEntry(
            "stale." + envelope.type.value if effect.stale else step,
            at=batch.now,
            order_id=envelope.order_id,
            payment_id=envelope.payment_id,
            detail=detail or (f"order {effect.order.status.value}" if effect.order else None),
        ))

    def _answer(
        self, batch: _Batch, effect: PaymentEventEffect, envelope: Envelope
    ) -> uuid.UUID | None:
        """The outcome this event decided, if any, to publish; its id goes in the inbox."""
        if effect.decided is None:
            return None
        reply = replace(
            envelope,
            type=effect.decided.type,
            reason=effect.decided.reason,
            causation_id=envelope.message_id,
            occurred_at=batch.now,
            message_id=uuid.uuid4(),
            order_version=effect.order.version if effect.order else None,
        )
        batch.replies.append(reply)
        return reply.message_id

    async def _displace(
        self, tx: OrdersTx, batch: _Batch, displaced: PaymentRecord, order: Order,
        cause: Envelope,
    ) -> None:
        """The former keeper is now the surplus payment: tell the payments side to refund it."""
        assert displaced.outcome is not None
        batch.store_record(displaced)
        reply = Envelope(
            type=displaced.outcome.type,
            reason=displaced.outcome.reason,
            occurred_at=batch.now,
            order_id=order.order_id,
            payment_id=displaced.payment_id,
            provider=cause.provider,
            amount=order.total,  # it paid the order, so it was for the order's total
            payment_version=displaced.last_version,
            correlation_id=f"{cause.provider}:{displaced.payment_id}",
            causation_id=cause.message_id,
            order_version=order.version,
        )
        batch.replies.append(reply)
        # Redeliveries of its events repeat the new answer: those stored before this batch,
        # and those applied earlier in it and not yet written.
        await tx.inbox.redirect_replies(displaced.payment_id, reply.message_id)
        batch.inbox = [
            replace(entry, reply_id=reply.message_id)
            if entry.envelope.payment_id == displaced.payment_id and entry.reply_id else entry
            for entry in batch.inbox
        ]
        batch.timeline.append(TimelineEntry(
            "order.payment_displaced", at=batch.now, order_id=order.order_id,
            payment_id=displaced.payment_id, detail=f"kept {cause.payment_id}: earlier approval",
        ))
