"""When each order became PAID as a reader of the orders database sees it: at its commit.

The other scenarios time PAID by `paid_at`, the consumer's clock when it applied the
event. That is a fine clock while a batch transaction lasts milliseconds, but it is taken
inside the transaction, before the commit: with 200 ms per order update a batch of 200
messages commits 40 s after its first `paid_at`, and a killed consumer's `paid_at` rows
roll back and are written again later. The recovery scenarios therefore poll the orders
database and keep, for each order, the wall-clock time of the first poll that saw it PAID:
never earlier than its commit, at most one poll interval (plus a query) later.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database

__all__ = ["PaidWatch", "watching"]


@dataclass
class PaidWatch:
    """Order id -> epoch seconds of the first poll that found it PAID."""

    db: Database
    every: float = 0.25
    seen: dict[str, float] = field(default_factory=dict)

    async def poll(self) -> None:
        # The time is taken before the query: what it finds committed before its snapshot,
        # which is taken after this line, so a seen time is never before the commit.
        now = time.time()
        async with self.db.read() as conn:
            rows = await conn.execute(select(t.orders.c.order_id)
                                      .where(t.orders.c.status == "paid"))
            for order_id in rows.scalars():
                self.seen.setdefault(order_id, now)

    async def run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self.every)

    async def until(self, order_ids: Sequence[str], *, cutoff: float) -> bool:
        """Wait until every one of `order_ids` was seen PAID, or the monotonic `cutoff`."""
        while time.monotonic() < cutoff:
            if all(o in self.seen for o in order_ids):
                return True
            await asyncio.sleep(self.every / 2)
        await self.poll()
        return all(o in self.seen for o in order_ids)

    def last(self, order_ids: Sequence[str]) -> float | None:
        """When the last of `order_ids` seen PAID was seen (None if none was)."""
        return max((self.seen[o] for o in order_ids if o in self.seen), default=None)


@contextlib.asynccontextmanager
async def watching(db: Database, every: float = 0.25) -> AsyncIterator[PaidWatch]:
    """A `PaidWatch` polling `db` in the background while the block runs."""
    watch = PaidWatch(db, every)
    await watch.poll()
    task = asyncio.create_task(watch.run())
    try:
        yield watch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
