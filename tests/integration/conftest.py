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

import pytest

from payrelay.adapters.transports.rabbitmq import RabbitMQTransport
from payrelay.domain.errors import TransportUnavailable
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
    subscriptions are deleted, so runs never see each other's messages. Connections are
    named after the prefix (`<prefix>payrelay` unless a test names them).
    """
    made: list[RabbitMQTransport] = []

    async def make(**options: Any) -> RabbitMQTransport:
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
            await _delete_topology(made[0])


async def _delete_topology(transport: RabbitMQTransport, attempts: int = 3) -> None:
    """Delete this test's exchanges and queues; again if a connection is cut meanwhile
    (a test closing its own connections by name may catch the cleanup's too)."""
    for attempt in range(1, attempts + 1):
        try:
            return await transport.delete_topology()
        except TransportUnavailable:
            if attempt == attempts:
                raise


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


async def connection_pids(rabbitmqctl: Rabbitmqctl, name_prefix: str) -> list[str]:
    """The broker's ids for the connections named after `name_prefix`, and no others:
    `close_all_connections` would also cut other test runs sharing the broker."""
    listing = await rabbitmqctl("list_connections", "--no-table-headers", "pid",
                                "client_properties")
    return [line.split("\t")[0] for line in listing.splitlines()
            if f'{{"connection_name","{name_prefix}' in line]


async def close_connections(rabbitmqctl: Rabbitmqctl, pids: list[str]) -> None:
    await asyncio.gather(*(rabbitmqctl("close_connection", pid, "test") for pid in pids))
