"""Every request or connection payrelay's HTTP servers refuse: counted, and logged.

An attack must leave a trace, but the trace must not become the attack: a flood of bad
requests writing one line each would fill the disk and slow the good requests down. So
every rejection is counted exactly (`counts`, for tests and metrics), while log lines are
spent from a token bucket; a line written after some were skipped says how many.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from enum import StrEnum

from payrelay.entrypoints.rate_limit import TokenBucket

__all__ = ["Rejections", "ServerRejection"]

log = logging.getLogger("payrelay.intake")

_MAX_REASON = 120


class ServerRejection(StrEnum):
    """What the server itself refused, before or instead of any route answering."""

    HEADER_TIMEOUT = "header timeout"
    """The request line and headers did not arrive in time; the connection is closed."""
    BODY_TIMEOUT = "body timeout"
    """The body did not arrive in time; the connection is closed and the route gives up."""
    TOO_MANY_CONNECTIONS = "too many connections"
    """The listener already holds its maximum of open connections; the new one is closed."""
    OVER_CAPACITY = "over capacity"
    """As many requests as allowed are in progress: `503` with `Retry-After`."""
    RATE_LIMITED = "rate limited"
    """The client spent its allowance of rejected requests: `429`, and no work is done."""
    INVALID_HTTP = "invalid HTTP"
    """Not HTTP/1.1 the parser accepts (or headers over the size limit): `400`, closed."""


class Rejections:
    """The counter and the rate-limited log line of every refusal, shared by the listeners."""

    def __init__(
        self,
        *,
        log_per_second: float = 5.0,
        log_burst: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counts: Counter[str] = Counter()
        self._clock = clock
        self._log_budget = TokenBucket.full(rate=log_per_second, burst=log_burst, now=clock())
        self._unlogged = 0

    @property
    def total(self) -> int:
        return self.counts.total()

    def record(self, reason: str, *, address: str, status: int | None = None) -> None:
        """Count one refusal; log it unless the log's budget is spent for now."""
        reason = _printable(reason)
        self.counts[reason] += 1
        if not self._log_budget.take(self._clock()):
            self._unlogged += 1
            return
        skipped, self._unlogged = self._unlogged, 0
        answer = f"HTTP {status}" if status is not None else "connection closed"
        more = f" ({skipped} more rejections not logged)" if skipped else ""
        log.warning("rejected %s: %s, %s%s", address, reason, answer, more)


def _printable(text: str) -> str:
    """A reason fit for one log line: no control characters, bounded length."""
    cleaned = "".join(c if c.isprintable() else "?" for c in text[:_MAX_REASON])
    return cleaned or "no reason given"
