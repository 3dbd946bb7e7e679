"""Test support: the whole embedded system on loopback ports, and ways to drive it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.engine import make_url

from payrelay.adapters.storage.provision import scratch_databases
from payrelay.adapters.transports.rabbitmq import RabbitMQTransport
from payrelay.bootstrap import (
    WORKER_ROLES,
    AdapterResources,
    Role,
    System,
    adapter_resources,
    utc_now,
)
from payrelay.entrypoints.embedded import EmbeddedStack, embedded_settings, run_embedded
from payrelay.faults import Faults
from payrelay.ports import Clock, Tracing
from payrelay.simulator.faults import SimulatorFaults
from payrelay.simulator.notifier import DeliveryPolicy

FAST = {
    "retry_base_seconds": 0.05,
    "retry_cap_seconds": 0.5,
    "poll_interval_seconds": 0.05,
    "lease_seconds": 0.5,
    "consumer_retry_delays": "0.05,0.1,0.2,0.4",
    "payment_fetch_interval_seconds": 0.1,
}
FAST_DELIVERY = DeliveryPolicy(base_delay=0.02, max_attempts=8)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll `check` until it holds; fail the test with `what` if it never does."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        # Said here, not by a bare TimeoutError: which of a test's waits ran out is the
        # first thing a reader of the failure needs.
        pytest.fail(f"{what}: still not true after {timeout}s", pytrace=False)


StackFactory = Callable[..., contextlib.AbstractAsyncContextManager[EmbeddedStack]]


def adapters_of(running: EmbeddedStack | System) -> AdapterResources:
    """The databases and HTTP clients behind a running system, for tests that look inside."""
    return adapter_resources(running.system if isinstance(running, EmbeddedStack) else running)


class SteppedClock:
    """Real time plus an offset the test moves forward (never back), for payrelay's clock.

    Lets a test start at the very beginning of a time window, and end it, without waiting.
    """

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.offset

    def advance(self, delta: timedelta) -> None:
        assert delta >= timedelta(0), "a clock never goes back"
        self.offset += delta

    def skip_to_window_start(self, window: timedelta) -> None:
        """Jump to the start of the next window, so the whole of it lies ahead."""
        elapsed = self() - datetime(1970, 1, 1, tzinfo=UTC)
        self.advance(window - elapsed % window)

POSTGRES_URL = os.environ.get(
    "PAYRELAY_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
RABBITMQ_URL = os.environ.get("PAYRELAY_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


def require_server(name: str, url: str) -> None:
    """Skip when a real server is absent, except in CI, where its absence is a failure."""
    parsed = make_url(url) if "://" in url and not url.startswith("amqp") else None
    host = parsed.host if parsed else (urlsplit(url).hostname or "127.0.0.1")
    port = (parsed.port if parsed else urlsplit(url).port) or {"PostgreSQL": 5432}.get(name, 5672)
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        message = f"{name} is not reachable at {host}:{port}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI requires it", pytrace=False)
        pytest.skip(message)


def require_private_servers() -> None:
    """Skip when this machine cannot start private PostgreSQL and RabbitMQ instances (no
    initdb, pg_ctl, rabbitmq-server, rabbitmqctl or epmd), except in CI: there, a failure."""
    from payrelay.chaos.servers import missing_programs

    missing = missing_programs()
    if missing:
        message = f"cannot start private servers: {', '.join(missing)} not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI requires them", pytrace=False)
        pytest.skip(message)


async def delete_rabbitmq_topology(prefix: str) -> None:
    """Remove every exchange and queue a test created under its unique prefix."""
    # Never connected: deleting needs only the names, which the prefix determines.
    await RabbitMQTransport(RABBITMQ_URL, name_prefix=prefix).delete_topology()


@contextlib.asynccontextmanager
async def fresh_postgres_databases(count: int) -> AsyncIterator[list[str]]:
    """`count` new, empty databases on the test server, dropped afterwards."""
    require_server("PostgreSQL", POSTGRES_URL)
    async with scratch_databases(POSTGRES_URL, ["payrelay_test"] * count) as urls:
        yield urls


def stack_factory(tmp_path: Path) -> StackFactory:
    """`async with make_stack(simulator_faults=..., faults=..., **settings) as stack:`."""

    @contextlib.asynccontextmanager
    async def factory(
        *,
        backend: str = "sqlite",
        simulator_faults: SimulatorFaults | None = None,
        faults: Faults | None = None,
        start_workers: bool = True,
        roles: Iterable[Role] = WORKER_ROLES,
        delivery: DeliveryPolicy = FAST_DELIVERY,
        clock: Clock = utc_now,
        tracing: Tracing | None = None,
        **settings: Any,
    ) -> AsyncIterator[EmbeddedStack]:
        values = {**FAST, **settings}
        async with contextlib.AsyncExitStack() as stack:
            if backend in ("postgres", "postgres+rabbitmq"):
                payments_url, orders_url = await stack.enter_async_context(
                    fresh_postgres_databases(2)
                )
                values |= {"payments_database_url": payments_url,
                           "orders_database_url": orders_url}
            if backend == "postgres+rabbitmq":
                require_server("RabbitMQ", RABBITMQ_URL)
                prefix = f"t-{uuid.uuid4().hex[:12]}."
                values |= {"broker_url": RABBITMQ_URL, "broker_name_prefix": prefix}
                stack.push_async_callback(delete_rabbitmq_topology, prefix)
            embedded = await stack.enter_async_context(
                run_embedded(
                    embedded_settings(tmp_path, **values),
                    simulator_faults=simulator_faults,
                    faults=faults,
                    seed=1,
                    roles=roles if start_workers else (),
                    approve_delay=0.05,
                    delivery=delivery,
                    clock=clock,
                    tracing=tracing,
                )
            )
            yield embedded

    return factory


@dataclass
class Customer:
    """Plays the shop's customer: creates an order, gets the checkout, pays at the gateway."""

    stack: EmbeddedStack
    http: httpx.AsyncClient

    async def order(self, total: str = "25.00", currency: str = "BRL") -> str:
        response = await self.http.post(
            f"{self.stack.orders_url}/orders",
            json={
                "items": [{"sku": "SKU-1", "quantity": 1, "unit_price": total}],
                "total": total,
                "currency": currency,
            },
        )
        assert response.status_code == 201, response.text
        order_id: str = response.json()["order_id"]
        return order_id

    async def checkout(self, order_id: str) -> str:
        response = await self.http.post(f"{self.stack.orders_url}/orders/{order_id}/checkout")
        assert response.status_code == 200, response.text
        preference_id: str = response.json()["preference_id"]
        return preference_id

    async def pay(self, preference_id: str, outcome: str = "approve") -> str:
        return str(await self.stack.simulator.pay(preference_id, outcome))

    async def order_status(self, order_id: str) -> dict[str, Any]:
        response = await self.http.get(f"{self.stack.orders_url}/orders/{order_id}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def wait_until_status(self, order_id: str, status: str, timeout: float = 10.0) -> None:
        async def reached() -> bool:
            return (await self.order_status(order_id))["status"] == status

        await eventually(reached, timeout=timeout, what=f"order {order_id} {status}")


