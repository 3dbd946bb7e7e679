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


def database_wakeups(*, payments: Database, orders: Database | None) -> PostgresWakeups:
    """Each channel on the database that holds its table (none on SQLite, nor without one)."""
    dsns: dict[WakeChannel, str] = {}
    for channel in WakeChannel:
        db = payments if channel in _PAYMENTS_CHANNELS else orders
        if db is not None and db.dialect == "postgresql":
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
        listeners = [asyncio.create_task(self._keep_listening(dsn, chans))
                     for dsn, chans in by_database.items()]
        try:
            await stop.wait()
        finally:
            # Cancelled rather than asked: a connect to an unreachable server must not hold
            # up a shutdown for its timeout.
            for listener in listeners:
                listener.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)

    async def _keep_listening(self, dsn: str, wakes: dict[WakeChannel, asyncio.Event]) -> None:
        """Listen, and listen again after any failure, until cancelled."""
        rng, failures = random.Random(), 0
        while True:
            try:
                conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn, timeout=10)
            except Exception as exc:  # unreachable, refused, timed out: try again later
                failures += 1
                self._lost(wakes, exc, failures)
            else:
                try:
                    await self._listen_on(conn, wakes, reconnected=failures > 0)
                except Exception as exc:  # any failure: reconnect; meanwhile the poll covers
                    failures = 1  # it was up: a new outage begins
                    self._lost(wakes, exc, failures)
                finally:
                    conn.terminate()  # nothing to flush on a listening connection
            await asyncio.sleep(self._reconnect.delay(failures, rng).total_seconds())

    @staticmethod
    def _lost(wakes: dict[WakeChannel, asyncio.Event], exc: Exception, failures: int) -> None:
        if failures == 1:  # once per outage: the poll interval keeps the workers going
            log.warning("wake-up listener (%s) lost: %s: %s; polling until it is back",
                        _names(wakes), type(exc).__name__, str(exc)[:200])

    async def _listen_on(
        self, conn: asyncpg.Connection[Any], wakes: dict[WakeChannel, asyncio.Event], *,
        reconnected: bool,
    ) -> None:
        """Listen on `conn` until it fails (raises) or the task is cancelled."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        for channel, wake in wakes.items():
            await conn.add_listener(channel.value, _setter(wake))
        if reconnected:
            log.warning("wake-up listener (%s) is back", _names(wakes))
        for wake in wakes.values():
            wake.set()  # whatever was committed while nobody listened
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self._health_check)
            if lost.is_set():
                raise ConnectionError("the listening connection was closed")
            await conn.execute("SELECT 1", timeout=self._health_check)


def _names(wakes: dict[WakeChannel, asyncio.Event]) -> str:
    return ", ".join(sorted(wakes))


def _setter(wake: asyncio.Event) -> Any:
    def on_notification(*_args: object) -> None:
        wake.set()

    return on_notification
