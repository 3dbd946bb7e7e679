"""Token buckets: how often something may happen, per key, with a burst allowance.

Time is passed in (a monotonic clock in seconds), so tests move it by hand. The number of
keys tracked is bounded: an attacker cycling through addresses cannot grow the table
without limit; the key used least recently is forgotten first, and a forgotten key starts
again with a full bucket, which is the most it could have had anyway after a long pause.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["KeyedBuckets", "TokenBucket"]

Clock = Callable[[], float]


@dataclass
class TokenBucket:
    """`burst` tokens at most, refilled at `rate` per second; one token per event."""

    rate: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, *, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate=rate, burst=burst, tokens=burst, updated=now)

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.updated = now

    def has_token(self, now: float) -> bool:
        self.refill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> bool:
        """Spend a token if there is one; False (and nothing spent) if there is none."""
        if not self.has_token(now):
            return False
        self.tokens -= 1.0
        return True

    def spend(self, now: float) -> None:
        """Spend a token even if it goes below zero: debt the key pays back before it is let
        through again (concurrent requests can all be checked before any is charged)."""
        self.refill(now)
        self.tokens = max(self.tokens - 1.0, -self.burst)


class KeyedBuckets:
    """One `TokenBucket` per key (a client's address), for at most `max_keys` keys."""

    def __init__(
        self, *, rate: float, burst: float, clock: Clock, max_keys: int = 10_000
    ) -> None:
        self.rate, self.burst = rate, burst
        self._clock, self._max_keys = clock, max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def has_token(self, key: str) -> bool:
        bucket = self._buckets.get(key)
        return bucket is None or bucket.has_token(self._clock())

    def spend(self, key: str) -> None:
        now = self._clock()
        bucket = self._buckets.pop(key, None) or TokenBucket.full(
            rate=self.rate, burst=self.burst, now=now
        )
        bucket.spend(now)
        self._buckets[key] = bucket  # most recently used last
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)
