"""One leased work queue over a table: notifications, both outboxes and refunds use it.

Stored work is a row with a `status` and a due time, `next_attempt_at`, which doubles as
the claim's lease: a claim moves it `lease` ahead, a heartbeat (`extend`) keeps moving it
while the worker has the work in hand, and a worker that dies simply stops moving it, so
the row falls due again for another worker within one lease. Only rows in the table's
waiting status are ever claimed, extended, postponed or failed; finishing a row (`WorkTable.finish`)
moves it out of that status, which is what keeps a late heartbeat from resurrecting it.

`WorkTable` says what differs between the tables; the SQL is written once, here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import Column, Table, Update, bindparam, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from payrelay.adapters.storage.database import Database
from payrelay.ports import FailedTry

__all__ = ["SqlWorkQueue", "WorkTable"]

W = TypeVar("W")

ERROR_WIDTH = 500  # a retry's last_error: the latest error, enough to act on
DEAD_ERROR_WIDTH = 2000  # a dead row's last_error: "<reason>; <error>", read by `payrelay dlq`


@dataclass(frozen=True, slots=True)
class WorkTable(Generic[W]):
    """What `SqlWorkQueue` needs to know about one table of stored work."""

    table: Table
    key: str
    """The unique column that names a row to its worker."""
    order: str
    """Due rows are claimed in this column's order, oldest first."""
    waiting: StrEnum
    """The status of a row still to be done: the only one claimed, extended or failed."""
    dead: StrEnum
    """The status of a row given up on; the reason is kept in `last_error`."""
    work: Callable[[Row[Any]], W]
    """The work item a claimed row becomes."""
    key_of: Callable[[W], object]
    """The work item's value of `key`."""
    attempts: str = "attempts"
    """Counts every failed try (it paces the backoff)."""
    failures: str | None = "failures"
    """Counts the failed tries that spend an attempt; None: `attempts` is the only count."""
    stamped_on_failure: tuple[str, ...] = ()
    """Columns set to `now` whenever a failure is recorded (a row's `updated_at`)."""
    stamped_on_dead: tuple[str, ...] = ()
    """Columns set to `now` when the row is given up (when it left the queue)."""

    def column(self, name: str) -> Column[Any]:
        return self.table.c[name]

    def finish(self, keys: Sequence[Any], status: StrEnum, **values: Any) -> Update:
        """The UPDATE that takes these rows out of the queue, done, as `status` (run it in
        the transaction that commits the work's effects)."""
        return update(self.table).where(self.column(self.key).in_(list(keys))).values(
            status=status, **values
        )


class SqlWorkQueue(Generic[W]):
    """`WorkQueue[W]` over one table; each call is its own short transaction."""

    def __init__(self, db: Database, work: WorkTable[W]) -> None:
        self._db, self._w = db, work

    async def claim_due(self, *, limit: int, now: datetime, lease: timedelta) -> list[W]:
        w, t = self._w, self._w.table
        key = w.column(w.key)
        due = (
            select(key)
            .where(t.c.status == w.waiting, t.c.next_attempt_at <= now)
            .order_by(w.column(w.order))
            .limit(limit)
            # PostgreSQL: a row another worker is claiming right now is skipped, not waited
            # for, so two workers never claim the same row. SQLite has one writer anyway.
            .with_for_update(skip_locked=True)
        )
        async with self._db.transaction() as conn:
            rows = (
                await conn.execute(
                    update(t)
                    .where(key.in_(due.scalar_subquery()))
                    .values(next_attempt_at=now + lease)
                    .returning(*t.c)
                )
            ).all()
        # RETURNING comes in no particular order; a stable sort keeps equal keys as they came.
        return [w.work(row) for row in sorted(rows, key=lambda r: r._mapping[w.order])]

    async def extend(self, work: Sequence[W], *, until: datetime) -> None:
        await self.postpone([self._w.key_of(item) for item in work], until=until)

    async def postpone(self, keys: Sequence[Any], *, until: datetime) -> None:
        """Make these rows due at `until`, counting no try; finished rows are left alone."""
        if not keys:
            return
        w, t = self._w, self._w.table
        key = w.column(w.key)
        # Only rows still waiting: a heartbeat landing after the row was finished must not
        # make it due again. SKIP LOCKED: a row the worker's own transaction is finishing
        # right now is skipped rather than waited for, so a heartbeat never waits on (or
        # deadlocks with) the commit it would be pointless to extend.
        held = (
            select(key)
            .where(key.in_(list(keys)), t.c.status == w.waiting)
            .with_for_update(skip_locked=True)
        )
        async with self._db.transaction() as conn:
            await conn.execute(
                update(t).where(key.in_(held.scalar_subquery())).values(next_attempt_at=until)
            )

    async def record_failures(self, failed: Sequence[FailedTry[W]], *, now: datetime) -> None:
        if not failed:
            return
        async with self._db.transaction() as conn:
            await self.write_failures(conn, failed, now=now)

    async def write_failures(
        self, conn: AsyncConnection, failed: Sequence[FailedTry[W]], *, now: datetime
    ) -> list[FailedTry[W]]:
        """Store each failure as a retry or as dead, in `conn`'s transaction.

        Returns the ones this call made dead (a row finished meanwhile, by a worker whose
        claim outlived ours, is left as it is)."""
        retries = [f for f in failed if f.decision.retry_at is not None]
        if retries:
            await conn.execute(
                self._failed(now=now).values(next_attempt_at=bindparam("due")),
                [{"k": self._w.key_of(f.work), "due": f.decision.retry_at,
                  "spent": int(f.decision.spends_attempt), "error": f.error[:ERROR_WIDTH]}
                 for f in retries],
            )
        dead = []
        for f in (f for f in failed if f.decision.retry_at is None):
            stamps = {column: now for column in self._w.stamped_on_dead}
            result = await conn.execute(
                self._failed(now=now).values(status=self._w.dead, **stamps),
                {"k": self._w.key_of(f.work), "spent": 1,
                 "error": f"{f.decision.gave_up}; {f.error}"[:DEAD_ERROR_WIDTH]},
            )
            if result.rowcount:
                dead.append(f)
        return dead

    def _failed(self, *, now: datetime) -> Update:
        """One failed try of a waiting row: counted, its error kept (bound per row)."""
        w = self._w
        attempts = w.column(w.attempts)
        values: dict[Column[Any], Any] = {
            attempts: attempts + 1,
            w.table.c.last_error: bindparam("error"),
            **{w.column(name): now for name in w.stamped_on_failure},
        }
        if w.failures is not None:
            failures = w.column(w.failures)
            values[failures] = failures + bindparam("spent")
        return (
            update(w.table)
            .where(w.column(w.key) == bindparam("k"), w.table.c.status == w.waiting)
            .values(values)
        )
