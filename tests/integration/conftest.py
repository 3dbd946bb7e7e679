"""Fixtures for tests against real servers.

A server that is not listening skips its tests on a developer machine, but fails them in CI
(`CI=true`), where a missing service must not pass as green. The URLs come from
tests/support.py (overridable through PAYRELAY_TEST_*_URL).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import pytest

from payrelay.adapters.transports.rabbitmq import STANDARD_SUBSCRIPTIONS, RabbitMQTransport
from tests.support import POSTGRES_URL, RABBITMQ_URL

RabbitMQFactory = Callable[..., Awaitable[RabbitMQTransport]]
Rabbitmqctl = Callable[..., Awaitable[str]]


def _require_listening(name: str, url: str, default_port: int) -> str:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI but is not reachable at {host}:{port}",
                        pytrace=False)
        pytest.skip(f"{name} not reachable at {host}:{port}")
    return url


@pytest.fixture
def rabbitmq_url() -> str:
    """The broker's URL, once a TCP connection to it works."""
    return _require_listening("RabbitMQ", RABBITMQ_URL, 5672)


@pytest.fixture
def postgres_url() -> str:
    """The PostgreSQL server's SQLAlchemy URL, once a TCP connection to it works."""
    return _require_listening("PostgreSQL", POSTGRES_URL, 5432)


@pytest.fixture
def name_prefix() -> str:
    """A prefix no other test run uses, for every exchange, queue and connection name."""
    return f"t-{uuid.uuid4().hex[:12]}."


@pytest.fixture
async def rabbitmq(rabbitmq_url: str, name_prefix: str) -> AsyncIterator[RabbitMQFactory]:
    """`await rabbitmq(**options)`: a connected transport on this test's own topology.

    Every transport is closed at the end, and the exchanges and queues of the standard
    subscriptions are deleted, so runs never see each other's messages.
    """
    made: list[RabbitMQTransport] = []

    async def make(**options: Any) -> RabbitMQTransport:
        options.setdefault("connection_name", f"{name_prefix}transport")
        options.setdefault("reconnect_interval_seconds", 0.2)
        transport = RabbitMQTransport(rabbitmq_url, name_prefix=name_prefix, **options)
        await transport.connect()
        made.append(transport)
        return transport

    try:
        yield make
    finally:
        for transport in made:
            await transport.close()
        if made:
            await _delete_topology(rabbitmq_url, made[0])


async def _delete_topology(url: str, transport: RabbitMQTransport, attempts: int = 3) -> None:
    """Delete this test's exchanges and queues; again if a connection is cut meanwhile
    (another test run may close every connection on the broker)."""
    for attempt in range(1, attempts + 1):
        try:
            return await _delete_topology_once(url, transport)
        except aio_pika.exceptions.AMQPConnectionError:
            if attempt == attempts:
                raise


async def _delete_topology_once(url: str, transport: RabbitMQTransport) -> None:
    topology = transport.topology
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for subscription in STANDARD_SUBSCRIPTIONS:
            for queue in topology.queues(subscription):
                await channel.queue_delete(queue)
        for exchange in topology.exchanges(STANDARD_SUBSCRIPTIONS):
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()


@pytest.fixture
def rabbitmqctl() -> Rabbitmqctl:
    """`await rabbitmqctl("list_queues", "name")`: stdout, or the test fails with stderr."""
    executable = shutil.which("rabbitmqctl")
    if executable is None:
        pytest.skip("rabbitmqctl is not installed here")

    async def run(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            executable, "-q", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(20):
                out, err = await process.communicate()
        except BaseException:  # timed out or the test gave up: leave no process behind
            process.kill()
            await process.wait()
            raise
        assert process.returncode == 0, f"rabbitmqctl {args}: {err.decode()}"
        return out.decode()

    return run
