"""The outbox relay: publish committed events, mark them sent only once confirmed.

The window between "published" and "marked sent" cannot be closed, only made harmless:
a crash there publishes the rows again with the same message ids, and every consumer's
inbox drops the second copy.

On the in-process transport the consumer's failures come back here too, each with its
kind: `decide_retry` keeps retrying through outages (the consumer's database down) without
spending attempts, follows the retry schedule for failures that count, and then makes the
message a dead letter. Transport trouble (a broker down) is retried for as long as it lasts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from payrelay.domain.errors import TransportUnavailable
from payrelay.domain.retry import FailureKind, RetryPolicy, decide_retry
from payrelay.failure_log import FailureLog
from payrelay.faults import FaultPoint, Faults
from payrelay.ports import (
    Clock,
    FailedTry,
    OutboundMessage,
    OutboxRelayStore,
    PublishResult,
    Refusal,
    Transport,
)
from payrelay.services.claims import LEASE, holding


@dataclass(frozen=True, slots=True)
class RelayResult:
    claimed: int
    confirmed: int
    retried: int
    dead_lettered: int = 0


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

    async def run_once(self) -> RelayResult:
        batch = await self._store.claim_due(
            limit=self._batch_size, now=self._clock(), lease=self._lease
        )
        if not batch:
            return RelayResult(0, 0, 0)
        self._faults.check(FaultPoint.RELAY_BEFORE_PUBLISH)
        unconfirmed = Refusal("not confirmed by the transport", FailureKind.UNAVAILABLE)
        async with holding(self._store, batch, lease=self._lease, clock=self._clock):
            try:
                result = await self._transport.publish(batch)
            except TransportUnavailable as exc:
                result = PublishResult(set())
                unconfirmed = Refusal(f"transport unavailable: {exc}", FailureKind.UNAVAILABLE)
        self._faults.check(FaultPoint.RELAY_AFTER_PUBLISH)
        now = self._clock()
        confirmed = result.confirmed
        await self._store.mark_sent([m.message_id for m in batch if m.message_id in confirmed],
                                    now=now)
        failed = [
            self._failed(m, result.refused.get(m.message_id, unconfirmed), now)
            for m in batch
            if m.message_id not in confirmed
        ]
        await self._store.record_failures(failed, now=now)
        dead = sum(1 for f in failed if not f.decision.retries)
        return RelayResult(len(batch), len(batch) - len(failed), len(failed) - dead, dead)

    def _failed(
        self, message: OutboundMessage, refusal: Refusal, now: datetime
    ) -> FailedTry[OutboundMessage]:
        decision = decide_retry(
            refusal.kind,
            tries=message.attempts,
            failures=message.attempts,
            age=now - (message.created_at or now),
            now=now,
            policy=self._retry,
            rng=self._rng,
        )
        self._failure_log.failed(
            f"{self._name} {message.routing_key}", kind=refusal.kind,
            order_id=message.order_id, payment_id=message.payment_id,
            error=refusal.error, decision=decision,
        )
        return FailedTry(message, refusal.error, decision)
