"""Exponential backoff with jitter, as a pure policy: time and randomness are passed in."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


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
