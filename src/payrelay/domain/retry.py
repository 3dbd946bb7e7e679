"""When to try failed work again, as pure policy: time and randomness are passed in.

`decide_retry` is the one rule every worker follows (processor, relays, consumers,
refunder): unavailability is waited out without spending attempts, a payment the gateway
does not know gets a grace period, and everything else is tried a bounded number of times
and then given up with a recorded reason, never retried for ever in silence.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from payrelay.domain.errors import (
    GatewayRejected,
    GatewayUnavailable,
    InvalidEnvelope,
    MalformedResource,
    StorageUnavailable,
    TransportUnavailable,
)


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float = 0.5  # seconds before the first retry (upper bound of its jitter window)
    factor: float = 2.0
    cap: float = 600.0

    def delay(self, attempt: int, rng: random.Random) -> timedelta:
        """Delay before retry number `attempt` (1-based): uniform in [base/2, ceiling]."""
        # Cap the exponent first: factor ** 1024 overflows a float long before anyone stops.
        exponent = min(max(attempt - 1, 0), 64)
        ceiling = min(self.cap, self.base * self.factor**exponent)
        return timedelta(seconds=rng.uniform(ceiling / 2, ceiling))

    def next_attempt_at(self, now: datetime, attempt: int, rng: random.Random) -> datetime:
        return now + self.delay(attempt, rng)


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """A fixed list of delays (seconds) for a failing consumer; after the last, dead-letter."""

    delays: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0)

    def next_attempt_at(
        self, now: datetime, failures: int, rng: random.Random
    ) -> datetime | None:
        """When to try again after `failures` failures (1-based), or None: give up."""
        if failures > len(self.delays):
            return None
        step = self.delays[failures - 1]
        return now + timedelta(seconds=step * rng.uniform(0.8, 1.2))

    @classmethod
    def parse(cls, text: str) -> RetrySchedule:
        """From "1,5,30,120,600"."""
        try:
            delays = tuple(float(part) for part in text.split(",") if part.strip())
        except ValueError as exc:
            raise ValueError(f"retry schedule must be comma-separated seconds: {text!r}") from exc
        if not delays or any(d <= 0 for d in delays):
            raise ValueError(f"retry schedule needs positive delays: {text!r}")
        return cls(delays)


class FailureKind(StrEnum):
    """What a failure says about the future: whether waiting can heal it."""

    UNAVAILABLE = "unavailable"
    """Something payrelay depends on is down (database, broker, gateway 5xx or timeout).
    Retried for as long as it lasts, with backoff; no attempt is spent on it."""
    NOT_VISIBLE = "not_visible"
    """The gateway does not know the payment (404). A new payment can take a while to be
    visible, so it is retried through a grace period, then given up with the reason."""
    PERMANENT = "permanent"
    """Waiting will not heal it (401/403, a malformed resource, an undecodable message):
    a few tries, in case a person fixes the cause, then given up with the reason."""
    FAILED = "failed"
    """Anything else (a consumer failing on a message, a bug): the retry schedule, then
    given up with the reason."""


def failure_kind(exc: BaseException) -> FailureKind:
    """Classify one of payrelay's own errors (adapters have translated vendor errors)."""
    if isinstance(exc, StorageUnavailable | TransportUnavailable | GatewayUnavailable):
        return FailureKind.UNAVAILABLE
    if isinstance(exc, GatewayRejected):
        return FailureKind.NOT_VISIBLE if exc.status_code == 404 else FailureKind.PERMANENT
    if isinstance(exc, InvalidEnvelope | MalformedResource):
        return FailureKind.PERMANENT
    return FailureKind.FAILED


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long each kind of failure is worth retrying."""

    backoff: Backoff = Backoff()
    """Delays between tries, growing with every try of any kind."""
    schedule: RetrySchedule = RetrySchedule()
    """Delays after each FAILED try; past the last one, give up."""
    permanent_tries: int = 3
    """PERMANENT failures tolerated before giving up."""
    not_visible_grace: timedelta = timedelta(minutes=10)
    """How long after it was first heard of a payment may stay unknown to the gateway."""


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Try again at `retry_at`, or (`retry_at` None) give up because of `gave_up`."""

    retry_at: datetime | None
    spends_attempt: bool
    """True when this failure counts towards giving up (stored as `failures`)."""
    gave_up: str | None = None

    @property
    def retries(self) -> bool:
        return self.retry_at is not None


def decide_retry(
    kind: FailureKind,
    *,
    tries: int,
    failures: int,
    age: timedelta,
    now: datetime,
    policy: RetryPolicy,
    rng: random.Random,
) -> RetryDecision:
    """The one retry rule: `tries` counts earlier tries of any kind (it paces the backoff),
    `failures` the earlier ones that counted towards giving up, `age` how long ago the work
    was first recorded."""
    backoff_due = policy.backoff.next_attempt_at(now, tries + 1, rng)
    if kind is FailureKind.UNAVAILABLE:
        return RetryDecision(backoff_due, spends_attempt=False)
    if kind is FailureKind.NOT_VISIBLE:
        if age < policy.not_visible_grace:
            return RetryDecision(backoff_due, spends_attempt=False)
        grace = int(policy.not_visible_grace.total_seconds())
        return RetryDecision(None, True, f"not_visible: unknown to the gateway after {grace}s")
    if kind is FailureKind.PERMANENT:
        if failures + 1 >= policy.permanent_tries:
            return RetryDecision(None, True, f"permanent: failed {failures + 1} times")
        return RetryDecision(backoff_due, spends_attempt=True)
    scheduled = policy.schedule.next_attempt_at(now, failures + 1, rng)
    if scheduled is None:
        return RetryDecision(None, True, f"failed: retries exhausted after {failures + 1} tries")
    return RetryDecision(scheduled, spends_attempt=True)
