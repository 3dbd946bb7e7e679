"""A consumer's failure policy, written once for every transport.

When a consumer fails on a message, `decide_retry` says what comes next, from the failure's
kind and what the message has been through (delayed retries spent, outages waited, age):

- an outage (UNAVAILABLE) waits through the retry delays without spending a step, slower
  each time up to the last delay, and is never dead-lettered for it;
- a failure that counts takes the next step of the schedule;
- once out of steps (or a permanent failure past its tries) the message is dead, with the
  x-payrelay-* headers its dead-letter handler stores.

RabbitMQ (rabbitmq_failures.py) carries that state in headers and waits in its retry
queues; the in-process transport (local.py) keeps it in memory. Both ask `ConsumerFailures`.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from payrelay.domain.retry import (
    FailureKind,
    RetryDecision,
    RetryPolicy,
    RetrySchedule,
    decide_retry,
    failure_kind,
)
from payrelay.failure_log import FailureLog, payment_fields_in

__all__ = [
    "ATTEMPTS_HEADER",
    "ERROR_HEADER",
    "EXCHANGE_HEADER",
    "MAX_ERROR_LENGTH",
    "REASON_HEADER",
    "RETRIES_EXHAUSTED",
    "RETRIES_HEADER",
    "ROUTING_KEY_HEADER",
    "WAITS_HEADER",
    "ConsumerFailures",
    "Refusal",
    "Verdict",
    "count_headers",
    "failures_in",
]

RETRIES_HEADER = "x-payrelay-retries"  # delayed retries already spent (absent: none)
WAITS_HEADER = "x-payrelay-waits"  # delayed retries through outages, which spend nothing
REASON_HEADER = "x-payrelay-reason"
ERROR_HEADER = "x-payrelay-error"  # the handler's exception, at most MAX_ERROR_LENGTH
ATTEMPTS_HEADER = "x-payrelay-attempts"  # deliveries to the handler, in all
EXCHANGE_HEADER = "x-payrelay-exchange"  # unprefixed, as the relay addressed it
ROUTING_KEY_HEADER = "x-payrelay-routing-key"  # the relay's key; retries travel under others
RETRIES_EXHAUSTED = "consumer retries exhausted"

MAX_ERROR_LENGTH = 1000  # of the handler's error, as kept with a retried or dead message

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a consumer failed on a message, and what kind of failure it was."""

    error: str
    kind: FailureKind

    @classmethod
    def of(cls, exc: Exception) -> Refusal:
        return cls(f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH], failure_kind(exc))


@dataclass(frozen=True, slots=True)
class Verdict:
    """What becomes of a failed delivery: wait `delay` seconds (retry step `step`), or dead.

    `retries` and `waits` are the counts to carry with the message from now on.
    """

    retries: int
    waits: int
    step: int | None
    """1-based index into the schedule's delays; None: dead."""
    delay: float
    reason: str | None = None
    """x-payrelay-reason once dead."""

    @property
    def dead(self) -> bool:
        return self.step is None

    def count_headers(self) -> dict[str, str]:
        """The counts to carry from now on, as `count_headers` writes them."""
        return count_headers(self.retries, self.waits)

    def dead_letter_headers(self, refusal: Refusal, *, exchange: str) -> dict[str, str]:
        """The x-payrelay-* verdict a dead-letter handler reads (see `Transport`)."""
        return {
            REASON_HEADER: self.reason or RETRIES_EXHAUSTED,
            ERROR_HEADER: refusal.error,
            ATTEMPTS_HEADER: str(self.retries + 1),
            EXCHANGE_HEADER: exchange,
        }


class ConsumerFailures:
    """One queue's failure policy: `decide` a failed delivery's verdict, and log it once."""

    def __init__(
        self,
        *,
        queue: str,
        schedule: RetrySchedule,
        failure_log: FailureLog,
        rng: random.Random | None = None,
    ) -> None:
        self._queue = queue
        self._delays = schedule.delays
        self._policy = RetryPolicy(schedule=schedule)
        self._failure_log = failure_log
        self._rng = rng or random.Random()

    def decide(
        self,
        refusal: Refusal,
        *,
        retries: int,
        waits: int,
        age: timedelta,
        now: datetime,
        body: bytes,
    ) -> Verdict:
        """The verdict on a delivery that has spent `retries` steps and waited `waits` times."""
        decision = decide_retry(
            refusal.kind, tries=retries + waits, failures=retries, age=age, now=now,
            policy=self._policy, rng=self._rng,
        )
        verdict = self._verdict(decision, retries=retries, waits=waits)
        if verdict.step is not None:  # the log says when it really comes back
            decision = replace(decision, retry_at=now + timedelta(seconds=verdict.delay))
        ids = payment_fields_in(body)
        self._failure_log.failed(
            f"consumer {self._queue}", kind=refusal.kind, order_id=ids["order_id"],
            payment_id=ids["payment_id"], error=refusal.error, decision=decision,
            correlation_id=ids["correlation_id"],
        )
        return verdict

    def _verdict(self, decision: RetryDecision, *, retries: int, waits: int) -> Verdict:
        last = len(self._delays)
        if decision.retry_at is None:
            reason = decision.gave_up or RETRIES_EXHAUSTED
            # A spent schedule keeps its established words; other reasons say their own.
            reason = RETRIES_EXHAUSTED if reason.startswith("failed:") else reason
            return Verdict(retries, waits, None, 0.0, reason)
        if decision.spends_attempt:
            step = min(retries + 1, last)  # a PERMANENT failure may outlast the schedule
            return Verdict(retries + 1, waits, step, self._delays[step - 1])
        step = min(waits + 1, last)  # waits through the same delays, never into the DLQ
        return Verdict(retries, waits + 1, step, self._delays[step - 1])


def count_headers(retries: int, waits: int) -> dict[str, str]:
    """x-payrelay-retries and x-payrelay-waits, each only once it is not zero."""
    counts = {RETRIES_HEADER: retries, WAITS_HEADER: waits}
    return {name: str(count) for name, count in counts.items() if count}


async def failures_in(
    batch: Sequence[_T], handle: Callable[[Sequence[_T]], Awaitable[Refusal | None]]
) -> list[Refusal | None]:
    """Each item's failure (None: handled), trying the items alone if the batch fails.

    The handler's transaction rolls back as a whole: trying each message alone finds the
    ones that fail on their own, so one poison message does not hold its neighbours. An
    outage fails every message alike, so the whole batch waits it out instead: trying each
    alone would only knock on the consumer's database once more per message.
    """
    if not batch:
        return []
    error = await handle(batch)
    if error is None:
        return [None] * len(batch)
    if len(batch) == 1 or error.kind is FailureKind.UNAVAILABLE:
        return [error] * len(batch)
    return [await handle([item]) for item in batch]

