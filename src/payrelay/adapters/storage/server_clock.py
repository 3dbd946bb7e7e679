"""Every process tells time by the database server, not by its own wall clock.

Due times, leases, retry times, order expiry and the reconciler's SLAs are written by one
process and compared by another. A worker whose clock runs ahead would stamp its retries
in the future (another relay would not claim them until then) and take leases that look
expired to everyone else; one running behind would reclaim leases still held. So each
process reads the server's clock at start and every `resync` seconds, and in between
counts on from that reading with its monotonic clock, which no wall-clock step moves.

SQLite has no server: there every process on the machine shares the kernel's clock, and
the wall clock is used as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from payrelay.adapters.storage.database import Database
from payrelay.domain.errors import StorageUnavailable

__all__ = ["ServerClock"]

log = logging.getLogger(__name__)


class ServerClock:
    """A `Clock`: the database server's time, as of the last reading plus monotonic time."""

    def __init__(
        self, db: Database, *, resync_seconds: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._resync = resync_seconds
        self._monotonic = monotonic
        self._reading: tuple[datetime, float] | None = None
        self._task: asyncio.Task[None] | None = None

    def __call__(self) -> datetime:
        if self._reading is None:
            return datetime.now(UTC)
        server, at = self._reading
        return server + timedelta(seconds=self._monotonic() - at)

    @property
    def offset(self) -> timedelta:
        """How far the server's clock is from this process's wall clock."""
        return self() - datetime.now(UTC)

    async def sync(self) -> None:
        """Read the server's clock; the reading is taken as of the round trip's midpoint."""
        if self._db.is_sqlite:
            return
        sent = self._monotonic()
        async with self._db.read() as conn:
            server = (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()
        back = self._monotonic()
        self._reading = (server.astimezone(UTC), (sent + back) / 2)

    async def start(self) -> None:
        """Sync now, then again every `resync` seconds. A process may start while its
        database is down (an API answers 503 meanwhile): it then counts on its own wall
        clock, says so, and tries every second until the server answers."""
        try:
            await self.sync()
        except StorageUnavailable as exc:
            log.warning("could not read the database's clock (%s): this machine's clock "
                        "until it can", exc)
        if not self._db.is_sqlite and self._task is None:
            self._task = asyncio.create_task(self._resync_forever(), name="server-clock")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _resync_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._resync if self._reading else 1.0)
            try:
                await self.sync()
            except StorageUnavailable as exc:  # counting on from the last reading is fine
                if not failing:
                    log.warning("could not read the database's clock (%s): counting on from "
                                "the last reading", exc)
                failing = True
            else:
                failing = False
