"""payrelay as separate processes on PostgreSQL + RabbitMQ: several of each worker at once,
a broker that drops every connection mid-stream, and nothing lost or applied twice."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from payrelay.adapters.storage import queries
from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.chaos.processes import free_port
from payrelay.entrypoints.http_server import EmbeddedServer
from payrelay.simulator.app import create_app as create_simulator_app
from payrelay.simulator.notifier import DeliveryPolicy
from payrelay.simulator.state import GatewaySimulator
from tests.integration.conftest import Rabbitmqctl, close_connections, connection_pids
from tests.support import (
    RABBITMQ_URL,
    delete_rabbitmq_topology,
    eventually,
    fresh_postgres_databases,
    require_server,
)

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

TOKEN, SECRET = "TEST-token", "whsec-processes"
PAYRELAY = [sys.executable, "-m", "payrelay"]




@contextlib.asynccontextmanager
async def processes(env: dict[str, str], commands: list[list[str]], log_dir: Path
                    ) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    started = []
    try:
        for i, args in enumerate(commands):
            log = (log_dir / f"proc-{i}.log").open("wb")
            started.append(subprocess.Popen(
                [*PAYRELAY, "serve", *args], env=env, stdout=log, stderr=subprocess.STDOUT
            ))
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def close_broker_connections(rabbitmqctl: Rabbitmqctl, prefix: str) -> None:
    """Drop this test's connections (the processes name them `<prefix>payrelay`), not the
    broker's every connection: other test runs may share it. Waits for them to be up, so
    a second drop does not land while they are still reconnecting from the first."""
    pids: list[str] = []

    async def connected() -> bool:
        pids[:] = await connection_pids(rabbitmqctl, prefix)
        return bool(pids)

    await eventually(connected, timeout=30, what=f"connections named after {prefix!r}")
    await close_connections(rabbitmqctl, pids)


@contextlib.asynccontextmanager
async def broker_topology(prefix: str) -> AsyncIterator[str]:
    """`prefix` for the processes' exchanges and queues, all deleted afterwards."""
    try:
        yield prefix
    finally:
        await delete_rabbitmq_topology(prefix)


async def test_full_flow_across_processes_survives_a_dropped_broker(
    tmp_path: Path, rabbitmqctl: Rabbitmqctl
):
    require_server("RabbitMQ", RABBITMQ_URL)
    payments_port, orders_port, internal_port = free_port(), free_port(), free_port()
    payments_url = f"http://127.0.0.1:{payments_port}"
    internal_url = f"http://127.0.0.1:{internal_port}"
    async with fresh_postgres_databases(2) as (payments_db_url, orders_db_url), \
            broker_topology(f"t-{uuid.uuid4().hex[:8]}.") as prefix:
        simulator = GatewaySimulator(
            access_token=TOKEN, webhook_secret=SECRET, approve_delay=0.05,
            delivery=DeliveryPolicy(base_delay=0.05, max_attempts=10),
        )
        async with simulator, EmbeddedServer(create_simulator_app(simulator)) as sim_server:
            env = {
                **os.environ,
                "PAYRELAY_PAYMENTS_DATABASE_URL": payments_db_url,
                "PAYRELAY_ORDERS_DATABASE_URL": orders_db_url,
                "PAYRELAY_BROKER_URL": RABBITMQ_URL,
                "PAYRELAY_BROKER_NAME_PREFIX": prefix,
                "PAYRELAY_GATEWAY_BASE_URL": sim_server.base_url,
                "PAYRELAY_GATEWAY_ACCESS_TOKEN": TOKEN,
                "PAYRELAY_WEBHOOK_SECRETS": SECRET,
                "PAYRELAY_PUBLIC_URL": payments_url,
                "PAYRELAY_PAYMENTS_URL": internal_url,
                "PAYRELAY_RETRY_BASE_SECONDS": "0.1",
                "PAYRELAY_RETRY_CAP_SECONDS": "1",
                "PAYRELAY_LEASE_SECONDS": "3",
                "PAYRELAY_POLL_INTERVAL_SECONDS": "0.05",
            }
            migrated = await asyncio.to_thread(
                subprocess.run, [*PAYRELAY, "migrate"], env=env, capture_output=True, check=False
            )
            assert migrated.returncode == 0, migrated.stderr
            workers = [
                ["--role", "payments-api", "--role", "orders-api",
                 "--payments-port", str(payments_port), "--orders-port", str(orders_port),
                 "--payments-internal-port", str(internal_port)],
                ["--role", "processor"],
                ["--role", "processor"],
                ["--role", "payments-relay", "--role", "orders-relay"],
                ["--role", "payments-relay", "--role", "orders-relay"],
                ["--role", "order-consumer", "--role", "outcome-consumer"],
                ["--role", "order-consumer", "--role", "outcome-consumer"],
            ]
            async with processes(env, workers, tmp_path) as procs, \
                    httpx.AsyncClient(timeout=10) as http:
                async def api_ready() -> bool:
                    assert all(p.poll() is None for p in procs), "a process died at start-up"
                    try:
                        ready = await http.get(f"{payments_url}/readyz")
                        orders = await http.get(f"http://127.0.0.1:{orders_port}/readyz")
                    except httpx.TransportError:
                        return False
                    return ready.status_code == 200 and orders.status_code == 200

                await eventually(api_ready, timeout=30)
                orders_url = f"http://127.0.0.1:{orders_port}"
                order_ids = []
                for i in range(40):
                    if i == 20:
                        await close_broker_connections(rabbitmqctl, prefix)
                    created = await http.post(f"{orders_url}/orders", json={
                        "items": [{"sku": "s", "quantity": 1, "unit_price": "12.30"}],
                        "total": "12.30", "currency": "BRL"})
                    order_id = created.json()["order_id"]
                    order_ids.append(order_id)
                    checkout = await http.post(f"{orders_url}/orders/{order_id}/checkout")
                    preference = checkout.json()["preference_id"]
                    await simulator.pay(preference, "approve")
                    if i % 5 == 0:
                        await simulator.pay(preference, "approve")  # a customer paying twice
                await asyncio.sleep(0.2)
                await close_broker_connections(rabbitmqctl, prefix)

                payments_db, orders_db = Database(payments_db_url), Database(orders_db_url)
                try:
                    async def settled() -> bool:
                        rows = await queries.payment_rows(payments_db)
                        applied = [r for r in rows if r.order_outcome == "order.payment_applied"]
                        # A displaced keeper's rejection may still be on its way.
                        return len(rows) == 48 and all(r.order_outcome for r in rows) \
                            and len(applied) == 40

                    await eventually(settled, timeout=60, what="every payment answered")
                    orders = {o.order_id: o for o in await queries.order_rows(orders_db)}
                    assert all(orders[oid].status == "paid" for oid in order_ids)
                    rows = await queries.payment_rows(payments_db)
                    applied = [r for r in rows if r.order_outcome == "order.payment_applied"]
                    rejected = [r for r in rows if r.order_outcome == "order.payment_rejected"]
                    assert len(applied) == 40 and len(rejected) == 8
                    assert {r.outcome_reason for r in rejected} == {"already_paid"}
                    assert {r.order_id for r in applied} == set(order_ids)
                    async with orders_db.read() as conn:
                        versions = list(
                            (await conn.execute(select(t.orders.c.version))).scalars()
                        )
                        displaced = (await conn.execute(
                            select(func.count()).select_from(t.orders_timeline).where(
                                t.orders_timeline.c.step == "order.payment_displaced"))
                        ).scalar_one()
                    # Every order moved to paid once, plus once more when an earlier approval
                    # that arrived late took its place (the keeper rule), never otherwise.
                    assert set(versions) <= {2, 3}
                    assert versions.count(3) == displaced
                    async with orders_db.read() as conn:
                        inbox = (await conn.execute(
                            select(func.count()).select_from(t.orders_inbox))).scalar_one()
                    assert inbox == 48  # one inbox row per payment event, however delivered
                    assert await queries.outbox_pending(payments_db, orders_side=False) == 0
                finally:
                    await payments_db.dispose()
                    await orders_db.dispose()
            for proc in procs:
                assert proc.returncode == 0, (tmp_path / "proc-0.log").read_text()
