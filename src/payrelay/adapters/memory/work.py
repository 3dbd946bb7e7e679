"""Stored work in memory: one row shape and one claim/retry/dead mechanism for every queue.

The SQL queues keep a row's due time in `next_attempt_at`, which a claim moves past the
lease; these do the same, so a claimed row comes due again exactly when its lease ends,
and `extend` is nothing but moving that time further.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable, MutableMapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from payrelay.domain.retry import RetryDecision


@dataclasses.dataclass(frozen=True, kw_only=True)
class WorkRow:
    """What every queued row carries besides its own fields."""

    status: str
    next_attempt_at: datetime
    """When it is due; a claim moves it to the end of the lease."""
    attempts: int = 0
    failures: int = 0
    last_error: str | None = None


R = TypeVar("R", bound=WorkRow)
K = TypeVar("K", bound=Hashable)


def claim(
    rows: MutableMapping[K, R],
    *,
    waiting: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    order: Callable[[R], Any],
) -> list[R]:
    """Up to `limit` rows in `waiting` due at `now`, in `order`, held until `now + lease`."""
    due = sorted(
        ((key, row) for key, row in rows.items()
         if row.status == waiting and row.next_attempt_at <= now),
        key=lambda item: order(item[1]),
    )[:limit]
    claimed = []
    for key, row in due:
        rows[key] = dataclasses.replace(row, next_attempt_at=now + lease)
        claimed.append(rows[key])
    return claimed


def move_due(
    rows: MutableMapping[K, R], keys: Iterable[K], *, waiting: str, until: datetime
) -> None:
    """Make these rows due at `until`, if they are still waiting (extend, postpone)."""
    for key in keys:
        row = rows.get(key)
        if row is not None and row.status == waiting:
            rows[key] = dataclasses.replace(row, next_attempt_at=until)


def retried(row: R, decision: RetryDecision, error: str) -> R:
    """The row after a failed try its decision retries: due at `retry_at`, one try more."""
    assert decision.retry_at is not None
    return dataclasses.replace(
        row,
        next_attempt_at=decision.retry_at,
        attempts=row.attempts + 1,
        failures=row.failures + int(decision.spends_attempt),
        last_error=error[:500],
    )


def given_up(row: R, decision: RetryDecision, error: str, *, dead: str) -> R:
    """The row after a failed try its decision gave up: dead, the reason before the error.

    `payrelay dlq` reads the reason back as what precedes the first "; " of last_error.
    """
    return dataclasses.replace(
        row,
        status=dead,
        attempts=row.attempts + 1,
        failures=row.failures + 1,
        last_error=f"{decision.gave_up}; {error}"[:2000],
    )
