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
