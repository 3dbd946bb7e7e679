"""The outbox relay: publish committed events, mark them sent only once confirmed.

The window between "published" and "marked sent" cannot be closed, only made harmless:
a crash there publishes the rows again with the same message ids, and every consumer's
inbox drops the second copy.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from payrelay.domain.errors import TransportUnavailable
from payrelay.domain.retry import Backoff
from payrelay.faults import FaultPoint, Faults
from payrelay.ports import Clock, OutboxRelayStore, Transport


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
        backoff: Backoff,
        rng: random.Random,
        batch_size: int = 500,
        lease: timedelta = timedelta(seconds=30),
    ) -> None:
        self._store = store
        self._transport = transport
        self._clock = clock
        self._faults = faults
        self._backoff = backoff
        self._rng = rng
        self._batch_size = batch_size
        self._lease = lease

    async def run_once(self) -> RelayResult:
        batch = await self._store.claim_due(
            limit=self._batch_size, now=self._clock(), lease=self._lease
        )
        if not batch:
            return RelayResult(0, 0, 0)
        self._faults.check(FaultPoint.RELAY_BEFORE_PUBLISH)
        error = "not confirmed by the transport"
        try:
            confirmed = await self._transport.publish(batch)
        except TransportUnavailable as exc:
            confirmed, error = set(), f"transport unavailable: {exc}"
        self._faults.check(FaultPoint.RELAY_AFTER_PUBLISH)
        now = self._clock()
        await self._store.mark_sent([m.message_id for m in batch if m.message_id in confirmed],
                                    now=now)
        retries = [
            (m.message_id, self._backoff.next_attempt_at(now, m.attempts + 1, self._rng))
            for m in batch
            if m.message_id not in confirmed
        ]
        await self._store.schedule_retry(retries, error=error)
        return RelayResult(len(batch), len(batch) - len(retries), len(retries))
