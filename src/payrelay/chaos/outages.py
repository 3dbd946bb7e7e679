"""The faults that take a private server down for a while, or cut every connection to it.

Each only ever hits a server the run started itself (`servers.py`): the schedule never
plans them on given servers (`ChaosOptions.faults_off`). A server has one such fault at a
time: a second one due while the first is under way is skipped (and logged so), as an
outage that overlaps another would end it early, and `close_all_connections` fails on a
stopped app. Whatever happens, a window
ends with the server back: restoring is retried, and runs even when the run is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
from sqlalchemy.engine import make_url

from payrelay.chaos.backing import Backing
from payrelay.chaos.options import FaultKind
from payrelay.chaos.rabbitmq_node import PrivateRabbitMQ
from payrelay.chaos.schedule import PlannedFault
from payrelay.chaos.servers import PrivatePostgres, ServerCommandFailed

SERVER_OUTAGES = frozenset({FaultKind.BROKER_STOP, FaultKind.BROKER_CLOSE,
                            FaultKind.ORDERS_DB_DOWN, FaultKind.DB_DOWN})
RESTORE_ATTEMPTS = 5


async def _restored(restore: Callable[[], Awaitable[object]]) -> None:
    """Bring a server back, again after a failure: a fault must never outlive its window."""
    for attempt in range(1, RESTORE_ATTEMPTS + 1):
        try:
            await restore()
            return
        except (ServerCommandFailed, OSError, TimeoutError, asyncpg.PostgresError):
            if attempt == RESTORE_ATTEMPTS:
                raise
            await asyncio.sleep(1.0)


@dataclass
class ServerOutages:
    down: set[str] = field(default_factory=set)
    """"postgres", "rabbitmq": servers with a fault under way now."""

    async def inject(self, fault: PlannedFault, backing: Backing) -> str:
        """Inject one server fault; what it did, in a few words, for the fault log."""
        server = "rabbitmq" if fault.kind in (FaultKind.BROKER_STOP,
                                              FaultKind.BROKER_CLOSE) else "postgres"
        if server in self.down:
            return f"skipped: {server} already down (an earlier fault's window)"
        self.down.add(server)
        try:
            if fault.kind is FaultKind.BROKER_CLOSE:
                return await broker_close(_node(backing))
            if fault.kind is FaultKind.BROKER_STOP:
                return await broker_stop(_node(backing), fault.seconds)
            if fault.kind is FaultKind.DB_DOWN:
                return await db_down(_cluster(backing), fault.seconds)
            return await orders_db_down(_cluster(backing), backing, fault.seconds)
        finally:
            self.down.discard(server)


def _node(backing: Backing) -> PrivateRabbitMQ:
    if backing.rabbitmq is None:
        raise RuntimeError("no private RabbitMQ node: this fault would disturb a given one")
    return backing.rabbitmq


def _cluster(backing: Backing) -> PrivatePostgres:
    if backing.postgres is None:
        raise RuntimeError("no private PostgreSQL cluster: this fault would disturb a given one")
    return backing.postgres


async def broker_close(node: PrivateRabbitMQ) -> str:
    listed = await node.ctl("list_connections", "--no-table-headers", "name")
    await node.ctl("close_all_connections", "chaos: broker_close")
    count = sum(1 for line in listed.splitlines() if line.strip())
    return f"closed {count} broker connections from the server side"


async def broker_stop(node: PrivateRabbitMQ, seconds: float) -> str:
    await node.ctl("stop_app")
    try:
        await asyncio.sleep(seconds)
    finally:
        await _restored(lambda: node.ctl("start_app"))
    return f"broker app stopped for {seconds:.1f}s, then started again"


async def db_down(cluster: PrivatePostgres, seconds: float) -> str:
    await cluster.stop("immediate")
    try:
        await asyncio.sleep(seconds)
    finally:
        await _restored(cluster.start)
    return f"PostgreSQL crashed (stop -m immediate), started again after {seconds:.1f}s"


async def orders_db_down(cluster: PrivatePostgres, backing: Backing, seconds: float) -> str:
    name = make_url(backing.orders_database_url).database
    ended = await _allow_connections(cluster, name, allow=False)
    try:
        await asyncio.sleep(seconds)
    finally:
        await _restored(lambda: _allow_connections(cluster, name, allow=True))
    return f"order database refused connections for {seconds:.1f}s ({ended} terminated)"


async def _allow_connections(cluster: PrivatePostgres, name: str | None, *, allow: bool) -> int:
    """Let `name` take connections again, or refuse new ones and end those it has (new
    ones then fail with SQLSTATE 55000, which payrelay treats as unavailable)."""
    conn = await cluster.connect()
    try:
        await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if allow:
            return 0
        ended: int = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
        return ended
    finally:
        await conn.close()
