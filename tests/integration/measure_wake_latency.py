"""Webhook -> PAID latency with every stage in its own `payrelay serve --role …` process.

Not a test (pytest does not collect it): a measurement, run by hand on PostgreSQL + RabbitMQ.

    .venv/bin/python -m tests.integration.measure_wake_latency --payments 200 --rate 50

Latency is measured per payment, from its first notification's `received_at` (the webhook
was stored) to its order's `paid_at` (the order consumer committed), both stamped by the
processes on this host.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import func, select

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.entrypoints.http_server import EmbeddedServer
from payrelay.simulator.app import create_app as create_simulator_app
from payrelay.simulator.notifier import DeliveryPolicy
from payrelay.simulator.state import GatewaySimulator
from tests.integration.test_processes import (
    PAYRELAY,
    SECRET,
    TOKEN,
    broker_topology,
    free_port,
    processes,
)
from tests.support import RABBITMQ_URL, eventually, fresh_postgres_databases

Stages = dict[str, list[float]]
ROLES = [["processor"], ["payments-relay"], ["orders-relay"], ["order-consumer"],
         ["outcome-consumer"]]


async def measure(payments: int, rate: float, log_dir: Path) -> Stages:
    ports = {"payments": free_port(), "orders": free_port(), "internal": free_port()}
    async with fresh_postgres_databases(2) as (payments_db_url, orders_db_url), \
            broker_topology(f"m-{uuid.uuid4().hex[:8]}.") as prefix:
        simulator = GatewaySimulator(
            access_token=TOKEN, webhook_secret=SECRET, approve_delay=0.0,
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
                "PAYRELAY_PUBLIC_URL": f"http://127.0.0.1:{ports['payments']}",
                "PAYRELAY_PAYMENTS_URL": f"http://127.0.0.1:{ports['internal']}",
            }
            subprocess.run([*PAYRELAY, "migrate"], env=env, check=True, capture_output=True)
            api = ["--role", "payments-api", "--role", "orders-api",
                   "--payments-port", str(ports["payments"]),
                   "--orders-port", str(ports["orders"]),
                   "--payments-internal-port", str(ports["internal"])]
            workers = [api, *(["--role", r] for [r] in ROLES)]
            async with processes(env, workers, log_dir) as procs, \
                    httpx.AsyncClient(timeout=10) as http:
                orders_url = f"http://127.0.0.1:{ports['orders']}"
                await _wait_ready(http, ports)
                preferences = [await _checkout(http, orders_url) for _ in range(payments)]
                started = time.monotonic()
                for i, preference in enumerate(preferences):
                    await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
                    await simulator.pay(preference, "approve")
                stages = await _latencies(payments_db_url, orders_db_url, payments)
                names = ["api", *(r for [r] in ROLES)]
                used = zip(names, procs, strict=True)
                print("CPU seconds (user+system, start-up included): " + ", ".join(
                    f"{name} {_cpu_seconds(p.pid):.2f}" for name, p in used))
                return stages


def _cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc): robust to a busy host."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _wait_ready(http: httpx.AsyncClient, ports: dict[str, int]) -> None:
    async def ready() -> bool:
        try:
            a = await http.get(f"http://127.0.0.1:{ports['payments']}/readyz")
            b = await http.get(f"http://127.0.0.1:{ports['orders']}/readyz")
        except httpx.TransportError:
            return False
        return a.status_code == b.status_code == 200

    await eventually(ready, timeout=30, what="the APIs ready")
    await asyncio.sleep(1.0)  # the worker processes start as well


async def _checkout(http: httpx.AsyncClient, orders_url: str) -> str:
    created = await http.post(f"{orders_url}/orders", json={
        "items": [{"sku": "s", "quantity": 1, "unit_price": "12.30"}],
        "total": "12.30", "currency": "BRL"})
    order_id = created.json()["order_id"]
    checkout = await http.post(f"{orders_url}/orders/{order_id}/checkout")
    return str(checkout.json()["preference_id"])


async def _latencies(payments_url: str, orders_url: str, expected: int) -> Stages:
    payments_db, orders_db = Database(payments_url), Database(orders_url)
    try:
        async def all_paid() -> bool:
            async with orders_db.read() as conn:
                paid = select(func.count()).where(t.orders.c.paid_at.is_not(None))
                return int((await conn.execute(paid)).scalar_one()) >= expected

        await eventually(all_paid, timeout=120, what="every order paid")
        async with payments_db.read() as conn:
            n = t.notifications
            first = select(n.c.resource_id, func.min(n.c.received_at), func.min(n.c.processed_at))
            notified = {r[0]: r[1:] for r in await conn.execute(first.group_by(n.c.resource_id))}
            o = t.payments_outbox
            outbox = select(o.c.payment_id, func.min(o.c.created_at), func.min(o.c.sent_at))
            relayed = {r[0]: r[1:] for r in await conn.execute(outbox.group_by(o.c.payment_id))}
        async with orders_db.read() as conn:
            paid = (await conn.execute(select(t.orders.c.paid_by, t.orders.c.paid_at))).all()
        stages: Stages = {"webhook -> PAID": [], "webhook -> processed": [],
                          "outbox row -> published": [], "published -> PAID": []}
        for by, at in paid:
            (received, processed), (created, sent) = notified[by], relayed[by]
            for name, start, end in [("webhook -> PAID", received, at),
                                     ("webhook -> processed", received, processed),
                                     ("outbox row -> published", created, sent),
                                     ("published -> PAID", sent, at)]:
                stages[name].append((end - start).total_seconds() * 1000)
        return stages
    finally:
        await payments_db.dispose()
        await orders_db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="payments per second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as log_dir:
        stages = asyncio.run(measure(args.payments, args.rate, Path(log_dir)))
    print(f"{args.payments} payments at {args.rate:g}/s")
    for name, samples in stages.items():
        cuts = statistics.quantiles(samples, n=100)
        print(f"  {name:24} p50 {cuts[49]:5.0f} ms  p90 {cuts[89]:5.0f} ms  "
              f"p99 {cuts[98]:5.0f} ms  max {max(samples):5.0f} ms")


if __name__ == "__main__":
    main()
