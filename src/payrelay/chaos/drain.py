"""How long payrelay takes to catch up after each fault: the backlog, sampled during a run.

The backlog is what is stored and still due: notifications waiting, both outboxes'
pending rows, refunds requested. A fault's drain time is from its end until the first
sample that finds the backlog empty. Under steady load that is when payrelay has caught
up, not when the fault's own work was done: an upper bound, good for comparing runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from dataclasses import dataclass, field

from payrelay.adapters.storage import queries
from payrelay.adapters.storage.database import Database
from payrelay.chaos.schedule import InjectedFault
from payrelay.domain.work import RefundStatus

SAMPLE_SECONDS = 0.25


async def backlog_size(payments_db: Database, orders_db: Database) -> int:
    payments = await queries.payments_backlog(payments_db)
    refunds = await queries.refund_counts(payments_db)
    return (payments.notifications_waiting + payments.outbox_pending
            + await queries.outbox_pending(orders_db, orders_side=True)
            + refunds.get(RefundStatus.REQUESTED, 0))


@dataclass
class BacklogSampler:
    payments_db: Database
    orders_db: Database
    started_at: float
    samples: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since the run started, backlog size)."""

    async def run(self, stop: asyncio.Event) -> None:
        """Sample until `stop`; a sample a fault made fail (a terminated connection, a
        database busy past its timeout) is skipped, not fatal."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            with contextlib.suppress(Exception):
                size = await backlog_size(self.payments_db, self.orders_db)
                self.samples.append((loop.time() - self.started_at, size))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)

    def drained_after(self, at: float) -> float | None:
        """Seconds from `at` to the first empty backlog after it; None if never seen."""
        return next((t - at for t, size in self.samples if t >= at and size == 0), None)

    def drain_times(self, faults: list[InjectedFault]) -> dict[str, dict[str, float | int]]:
        """Per fault kind: p50 and max seconds to drain, and how many never drained."""
        by_kind: dict[str, list[float | None]] = {}
        for fault in faults:
            by_kind.setdefault(fault.planned.kind.value, []).append(
                self.drained_after(fault.ended))
        summary: dict[str, dict[str, float | int]] = {}
        for kind, times in sorted(by_kind.items()):
            seen = [t for t in times if t is not None]
            summary[kind] = {"faults": len(times), "never_drained": len(times) - len(seen)}
            if seen:
                summary[kind] |= {"p50_s": round(statistics.median(seen), 2),
                                  "max_s": round(max(seen), 2)}
        return summary
