"""`Wakeups` on PostgreSQL: LISTEN on one dedicated asyncpg connection per database.

The notifying side is not here: the wake triggers (`migrations/wake_triggers.py`) notify
from the very transaction that wrote the work, so a notification means a commit happened.
This side only listens, and keeps listening: a connection that is lost (the server
restarted, an operator's pg_terminate_backend, a silent network) is logged once, then
re-opened with backoff while the workers fall back to their poll interval.

On SQLite there is nothing to listen to (one process, whose workers wake each other in
memory); `listen` then just waits for `stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from payrelay.adapters.storage.database import Database
from payrelay.domain.retry import Backoff
from payrelay.ports import WakeChannel

__all__ = ["PostgresWakeups", "database_wakeups"]

log = logging.getLogger(__name__)

_RECONNECT = Backoff(base=0.2, cap=10.0)
_HEALTH_CHECK_SECONDS = 15.0  # a silent network drops no socket: ask now and then
_PAYMENTS_CHANNELS = (WakeChannel.NOTIFICATIONS, WakeChannel.PAYMENTS_OUTBOX, WakeChannel.REFUNDS)


def database_wakeups(*, payments: Database, orders: Database) -> PostgresWakeups:
    """Each channel on the database that holds its table (none on SQLite)."""
    dsns: dict[WakeChannel, str] = {}
    for channel in WakeChannel:
        db = payments if channel in _PAYMENTS_CHANNELS else orders
        if db.dialect == "postgresql":
            dsns[channel] = asyncpg_dsn(db.url)
    return PostgresWakeups(dsns)


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy `postgresql+asyncpg://` URL as asyncpg itself takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresWakeups:
    """`Wakeups` over LISTEN; `dsns` says which database each channel is notified on."""

    def __init__(
        self, dsns: Mapping[WakeChannel, str], *, reconnect: Backoff = _RECONNECT,
        health_check_seconds: float = _HEALTH_CHECK_SECONDS,
    ) -> None:
        self._dsns = dict(dsns)
        self._reconnect = reconnect
        self._health_check = health_check_seconds

    async def listen(
        self, wakes: Mapping[WakeChannel, asyncio.Event], *, stop: asyncio.Event
    ) -> None:
        by_database: dict[str, dict[WakeChannel, asyncio.Event]] = {}
        for channel, wake in wakes.items():
            if channel in self._dsns:
                by_database.setdefault(self._dsns[channel], {})[channel] = wake
        await asyncio.gather(
            stop.wait(), *(self._keep_listening(dsn, chans, stop)
                           for dsn, chans in by_database.items())
        )

    async def _keep_listening(
        self, dsn: str, wakes: dict[WakeChannel, asyncio.Event], stop: asyncio.Event
    ) -> None:
        rng, failures = random.Random(), 0
        names = ", ".join(sorted(wakes))
        while not stop.is_set():
            try:
                await self._listen_once(dsn, wakes, stop, reconnected=failures > 0)
                failures = 0
            except Exception as exc:  # any failure: reconnect; meanwhile the poll covers
                failures += 1
                if failures == 1:  # once per outage: the poll interval keeps workers going
                    log.warning("wake-up listener (%s) lost: %s: %s; polling until it is "
                                "back", names, type(exc).__name__, str(exc)[:200])
            if not stop.is_set():
                delay = self._reconnect.delay(max(failures, 1), rng).total_seconds()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def _listen_once(
        self, dsn: str, wakes: dict[WakeChannel, asyncio.Event], stop: asyncio.Event,
        *, reconnected: bool,
    ) -> None:
        """Listen on one connection until `stop` (returns) or the connection fails (raises)."""
        conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn, timeout=10)
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn: lost.set())
            for channel, wake in wakes.items():
                await conn.add_listener(channel.value, _setter(wake))
            if reconnected:
                log.warning("wake-up listener (%s) is back", ", ".join(sorted(wakes)))
            for wake in wakes.values():
                wake.set()  # whatever was committed while nobody listened
            while not stop.is_set():
                await _wait_any(lost, stop, self._health_check)
                if lost.is_set():
                    raise ConnectionError("the listening connection was closed")
                if not stop.is_set():
                    await conn.execute("SELECT 1", timeout=self._health_check)
        finally:
            conn.terminate()  # nothing to flush on a listening connection; never blocks


def _setter(wake: asyncio.Event) -> Any:
    def on_notification(*_args: object) -> None:
        wake.set()

    return on_notification


async def _wait_any(a: asyncio.Event, b: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.create_task(a.wait()), asyncio.create_task(b.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
