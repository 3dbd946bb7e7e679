"""The outbox relay: publish committed events, mark them sent only once confirmed.

The window between "published" and "marked sent" cannot be closed, only made harmless:
a crash there publishes the rows again with the same message ids, and every consumer's
inbox drops the second copy.

The relay only publishes and marks sent. Whatever the transport did not confirm is
transport trouble to it (a broker down, or an in-process consumer still retrying): retried
with backoff for as long as it lasts, never dead-lettered. What becomes of a message its
consumer fails on is the consumer side's to decide, on every transport (its retry schedule,
then a dead letter in the consumer's own database).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from payrelay.domain.errors import TransportUnavailable
from payrelay.domain.retry import FailureKind, RetryPolicy, decide_retry
from payrelay.failure_log import FailureLog
from payrelay.faults import FaultPoint, Faults
from payrelay.ports import (
    NO_TRACING,
    Clock,
    FailedTry,
    OutboundMessage,
    OutboxRelayStore,
    PublishResult,
    SpanName,
    Tracing,
    Transport,
)
from payrelay.ports.metrics import Metrics, NoMetrics
from payrelay.services import timeline_steps
from payrelay.services.claims import LEASE, holding
from payrelay.services.spans import SpanStart, batch_spans


@dataclass(frozen=True, slots=True)
class RelayResult:
    claimed: int
    confirmed: int
    retried: int


class OutboxRelay:
    def __init__(
        self,
        *,
        store: OutboxRelayStore,
        transport: Transport,
        clock: Clock,
        faults: Faults,
        retry: RetryPolicy,
        rng: random.Random,
        failure_log: FailureLog | None = None,
        name: str = "relay",
        batch_size: int = 500,
        lease: timedelta = LEASE,
        tracing: Tracing = NO_TRACING,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._transport = transport
        self._clock = clock
        self._faults = faults
        self._retry = retry
        self._rng = rng
        self._failure_log = failure_log or FailureLog(clock)
        self._name = name
        self._batch_size = batch_size
        self._lease = lease
        self._tracing = tracing
        self._metrics = metrics or NoMetrics()

    async def run_once(self) -> RelayResult:
        batch = await self._store.claim_due(
            limit=self._batch_size, now=self._clock(), lease=self._lease
        )
        if not batch:
            return RelayResult(0, 0, 0)
        self._faults.check(FaultPoint.RELAY_BEFORE_PUBLISH)
        error = "not confirmed by the transport"
        async with holding(self._store, batch, lease=self._lease, clock=self._clock):
            try:
                confirmed = (await self._publish(batch)).confirmed
            except TransportUnavailable as exc:
                confirmed, error = set(), f"transport unavailable: {exc}"
        self._faults.check(FaultPoint.RELAY_AFTER_PUBLISH)
        now = self._clock()
        sent = [m for m in batch if m.message_id in confirmed]
        await self._store.mark_sent([m.message_id for m in sent], now=now,
                                    timeline=timeline_steps.published(sent, at=now))
        failed = [self._failed(m, error, now) for m in batch if m.message_id not in confirmed]
        await self._store.record_failures(failed, now=now)
        self._metrics.published(relay=self._name, confirmed=len(batch) - len(failed),
                                failed=len(failed))
        return RelayResult(len(batch), len(batch) - len(failed), len(failed))

    async def _publish(self, batch: Sequence[OutboundMessage]) -> PublishResult:
        """Publish, each message in a span of its own that it carries to its consumer."""
        with batch_spans(self._tracing, SpanName.PUBLISH, map(_span_start, batch)) as spans:
            if spans:  # so the consume span of each message is its publish span's child
                batch = [replace(m, headers={**m.headers, **span.headers})
                         for m, span in zip(batch, spans, strict=True)]
            return await self._transport.publish(batch)

    def _failed(
        self, message: OutboundMessage, error: str, now: datetime
    ) -> FailedTry[OutboundMessage]:
        """An unconfirmed message: transport trouble, retried with backoff, never dead."""
        decision = decide_retry(
            FailureKind.UNAVAILABLE,
            tries=message.attempts,
            failures=0,
            age=now - (message.created_at or now),
            now=now,
            policy=self._retry,
            rng=self._rng,
        )
        self._failure_log.failed(
            f"{self._name} {message.routing_key}", kind=FailureKind.UNAVAILABLE,
            order_id=message.order_id, payment_id=message.payment_id,
            error=error, decision=decision, correlation_id=message.correlation_id,
        )
        return FailedTry(message, error, decision)


def _span_start(message: OutboundMessage) -> SpanStart:
    return SpanStart(message.correlation_id, {
        "messaging.destination.name": message.exchange,
        "messaging.rabbitmq.destination.routing_key": message.routing_key,
        "messaging.message.id": str(message.message_id),
    })
