"""What `bootstrap` opens for one System (engines, the group-committing notification log,
the wake-up listener, HTTP clients), and releases in the one order that works."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.payments import SqlNotificationLog
from payrelay.adapters.storage.server_clock import ServerClock
from payrelay.adapters.storage.wakeups import PostgresWakeups, database_wakeups


class HttpClient(Protocol):
    """An HTTP client bootstrap built (httpx's, or the gateway's aiohttp wire)."""

    async def aclose(self) -> None: ...


@dataclass
class AdapterResources:
    """What `bootstrap` opened for one System, released by `close()` (the `Resources` port).

    Entrypoints never reach in here; tests and tools that must run SQL do, through
    `adapter_resources(system)`.
    """

    payments_db: Database
    orders_db: Database
    notification_log: SqlNotificationLog
    wakeups: PostgresWakeups
    http_clients: list[HttpClient] = field(default_factory=list)
    server_clock: ServerClock | None = None

    @classmethod
    def open(cls, *, payments_url: str, orders_url: str) -> AdapterResources:
        payments_db, orders_db = Database(payments_url), Database(orders_url)
        wakeups = database_wakeups(payments=payments_db, orders=orders_db)
        return cls(payments_db, orders_db, SqlNotificationLog(payments_db), wakeups)

    async def start_server_clock(self) -> ServerClock:
        """The payments database server's clock, read now and kept in sync until close."""
        self.server_clock = ServerClock(self.payments_db)
        await self.server_clock.start()
        return self.server_clock

    async def close(self) -> None:
        if self.server_clock is not None:
            await self.server_clock.aclose()
        await self.notification_log.close()  # its last group commit needs the database
        for client in self.http_clients:
            await client.aclose()
        await self.payments_db.dispose()
        await self.orders_db.dispose()
