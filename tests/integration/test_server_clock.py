"""`ServerClock`: the database server's time, counted on with the monotonic clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.server_clock import ServerClock
from tests.support import fresh_postgres_databases


class SteppedMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.postgres
async def test_it_reads_the_server_and_counts_on_with_the_monotonic_clock() -> None:
    async with fresh_postgres_databases(1) as (url,):
        db, monotonic = Database(url), SteppedMonotonic()
        clock = ServerClock(db, resync_seconds=3600, monotonic=monotonic)
        try:
            await clock.start()
            read = clock()
            assert abs(read - datetime.now(UTC)) < timedelta(seconds=2)  # one machine here
            monotonic.now += 90.5
            assert clock() - read == timedelta(seconds=90.5)
        finally:
            await clock.aclose()
            await db.dispose()


async def test_on_sqlite_it_is_the_wall_clock(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    monotonic = SteppedMonotonic()
    clock = ServerClock(db, monotonic=monotonic)
    try:
        await clock.start()
        monotonic.now += 3600  # not used: there is no server reading to count on from
        assert abs(clock() - datetime.now(UTC)) < timedelta(seconds=2)
    finally:
        await clock.aclose()
        await db.dispose()
