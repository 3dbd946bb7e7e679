"""The chaos run's private servers: each starts on free ports, survives the outages the
faults inflict, and leaves no process and no directory behind, even when the block fails."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import asyncpg
import pytest

from payrelay.adapters.transports.rabbitmq import RabbitMQTransport
from payrelay.chaos.backing import Backing
from payrelay.chaos.outages import broker_close, orders_db_down
from payrelay.chaos.rabbitmq_node import PrivateRabbitMQ, private_rabbitmq
from payrelay.chaos.servers import PrivatePostgres, private_postgres
from payrelay.domain.errors import TransportUnavailable
from tests.support import require_private_servers

pytestmark = pytest.mark.chaos


def _gone(pid: int, seconds: float = 10.0) -> bool:
    """Whether `pid` has ended within `seconds` (a stop returns just before it exits)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _postmaster(cluster: PrivatePostgres) -> int:
    return int((cluster.root / "data" / "postmaster.pid").read_text().split()[0])


async def _select_one(cluster: PrivatePostgres) -> int:
    conn = await cluster.connect()
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


async def test_a_private_cluster_crashes_restarts_and_is_removed(tmp_path: Path) -> None:
    require_private_servers()
    with pytest.raises(RuntimeError, match="the block failed"):
        async with private_postgres(tmp_path) as cluster:
            assert cluster.started_in > 0 and await _select_one(cluster) == 1
            (url,) = await cluster.create_databases(["orders"])
            assert url.endswith(f":{cluster.port}/orders")
            await cluster.stop("immediate")
            with pytest.raises(OSError):
                await _select_one(cluster)
            await cluster.start()
            assert await _select_one(cluster) == 1
            postmaster = _postmaster(cluster)
            raise RuntimeError("the block failed")
    assert not cluster.root.exists() and _gone(postmaster)
    assert (tmp_path / "private-postgres.log").exists()


async def _broker_answers(node: PrivateRabbitMQ) -> bool:
    transport = RabbitMQTransport(node.url, name_prefix="t.", subscriptions=())
    try:
        await transport.connect()
    except TransportUnavailable:
        return False
    await transport.close()
    return True


async def test_a_private_broker_stops_its_app_starts_again_and_is_removed(
    tmp_path: Path,
) -> None:
    require_private_servers()
    async with private_rabbitmq(tmp_path) as node:
        assert node.started_in > 0 and node.node.startswith("chaos-")
        assert await _broker_answers(node)
        await node.ctl("stop_app")
        assert not await _broker_answers(node)
        await node.ctl("start_app")
        assert await _broker_answers(node)
        held = RabbitMQTransport(node.url, name_prefix="t.", subscriptions=())
        await held.connect()
        try:
            assert await broker_close(node) == "closed 1 broker connections from the server side"
        finally:
            await held.close()
        pid = int((node.root / "rabbit.pid").read_text())
    assert not node.root.exists() and _gone(pid)


async def test_the_order_database_refuses_connections_for_its_window(tmp_path: Path) -> None:
    """`orders_db_down`: new connections fail with SQLSTATE 55000 (which payrelay's storage
    adapter treats as unavailable) until the window ends, then work again."""
    require_private_servers()
    async with private_postgres(tmp_path) as cluster:
        payments, orders = await cluster.create_databases(["payments", "orders"])
        backing = Backing(payments, orders, "amqp://unused", postgres=cluster)
        window = asyncio.create_task(orders_db_down(cluster, backing, 2.0))
        await asyncio.sleep(1.0)
        with pytest.raises(asyncpg.PostgresError) as refused:
            await asyncpg.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                                  database="orders")
        assert refused.value.sqlstate == "55000"
        assert (await window).startswith("order database refused connections for 2.0s")
        conn = await asyncpg.connect(host="127.0.0.1", port=cluster.port, user="postgres",
                                     database="orders")
        await conn.close()
