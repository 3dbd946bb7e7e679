"""How a sweep walks the gateway's payments: a cursor over date_last_updated, page by page.

Paging by offset alone over "updated between A and B" is not safe: a payment updated
while the sweep runs leaves the window, the ones after it move one place up, and the one
that moves onto the page boundary is never read. So each page starts at the last update
date already read (inclusive), and skips only the payments of that very instant that the
previous pages held; a payment leaving the window then shifts nothing still unread (short
of several payments sharing one millisecond, which the next run's overlap reads again).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from payrelay.ports import PaymentPage


@dataclass(frozen=True, slots=True)
class SweepCursor:
    """Where the next page starts: payments updated at or after `at`, the first `skip` of
    those updated exactly at `at` left out (an earlier page held them)."""

    at: datetime
    skip: int = 0
    done: bool = False
    """The last page was read: nothing after it matched."""

    def after(self, page: PaymentPage) -> SweepCursor:
        """The cursor once `page`, read from this cursor, has been handled."""
        dates = page.dates
        if not dates:
            if self.skip and page.total:
                # Fewer payments at `at` than skipped: one of them was updated meanwhile.
                # Read that instant again from its start rather than jump over a payment.
                return SweepCursor(self.at)
            return replace(self, done=True)
        last = dates[-1]
        ties = dates.count(last)
        skip = self.skip + ties if last == self.at else ties
        return SweepCursor(last, skip, done=page.offset + len(dates) >= page.total)


def safe_watermark(reached: datetime, *, started: datetime, overlap: timedelta) -> datetime:
    """Where the next sweep may start, having read everything updated before `reached`.

    Never later than `overlap` before the run started: a payment the gateway did not list
    yet (it lists new payments late) or whose date comes from a clock ahead of ours may
    carry an earlier date than what was read, and is found by reading that stretch again.
    Far behind (a backlog), the next run resumes exactly where this one stopped.
    """
    return min(reached, started - overlap)
