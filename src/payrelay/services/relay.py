"""The outbox relay: publish committed events, mark them sent only once confirmed.

The window between "published" and "marked sent" cannot be closed, only made harmless:
a crash there publishes the rows again with the same message ids, and every consumer's
inbox drops the second copy.

On the in-process transport the consumer's failures come back here too: each message that
failed on its own follows the consumer retry schedule, kept in the outbox row, and then
becomes a dead letter. Transport trouble (a broker down) is retried for as long as it lasts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from payrelay.domain.errors import TransportUnavailable
from payrelay.domain.retry import Backoff, RetrySchedule
from payrelay.faults import FaultPoint, Faults
from payrelay.ports import Clock, OutboxRelayStore, PublishResult, Transport

DEFAULT_SCHEDULE = RetrySchedule()


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
        backoff: Backoff,
        rng: random.Random,
        batch_size: int = 500,
        lease: timedelta = timedelta(seconds=30),
        schedule: RetrySchedule = DEFAULT_SCHEDULE,
    ) -> None:
        self._store = store
        self._transport = transport
        self._clock = clock
        self._faults = faults
        self._backoff = backoff
        self._rng = rng
        self._batch_size = batch_size
        self._lease = lease
        self._schedule = schedule

    async def run_once(self) -> RelayResult:
        batch = await self._store.claim_due(
            limit=self._batch_size, now=self._clock(), lease=self._lease
        )
        if not batch:
            return RelayResult(0, 0, 0)
        self._faults.check(FaultPoint.RELAY_BEFORE_PUBLISH)
        error = "not confirmed by the transport"
        try:
            result = await self._transport.publish(batch)
        except TransportUnavailable as exc:
            result, error = PublishResult(set()), f"transport unavailable: {exc}"
        self._faults.check(FaultPoint.RELAY_AFTER_PUBLISH)
        now = self._clock()
        confirmed = result.confirmed
        await self._store.mark_sent([m.message_id for m in batch if m.message_id in confirmed],
                                    now=now)
        retries, dead = [], 0
        for message in batch:
            if message.message_id in confirmed:
                continue
            refusal = result.refused.get(message.message_id)
            if refusal is None:  # the transport's trouble: retried for as long as it lasts
                due = self._backoff.next_attempt_at(now, message.attempts + 1, self._rng)
                retries.append((message.message_id, due))
                continue
            next_try = self._schedule.next_attempt_at(now, message.refusals + 1, self._rng)
            if next_try is None:
                await self._store.dead_letter(message, error=refusal, now=now)
                dead += 1
            else:
                await self._store.schedule_refused(message, due=next_try, error=refusal)
        await self._store.schedule_retry(retries, error=error)
        failed = len(batch) - len(confirmed & {m.message_id for m in batch})
        return RelayResult(len(batch), len(batch) - failed, failed - dead, dead)
