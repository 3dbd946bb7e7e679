"""A processor killed with SIGKILL while it holds claims gives them back within seconds.

Two real `payrelay serve --role processor` processes on PostgreSQL. The first claims a
notification and is stuck in a slow gateway call; its heartbeat keeps the claim, so the
second, polling all along, does not take the row. Then the first is killed outright (no
shutdown, no release): its lease simply stops being renewed, and the second applies the
payment within one lease of the kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.migrations import Schema, upgrade
from payrelay.adapters.storage.payments import SqlNotificationLog
from payrelay.domain.work import NotificationStatus
from payrelay.entrypoints.http_server import EmbeddedServer
from payrelay.ports import NotificationRecord
from payrelay.simulator.app import create_app as create_simulator_app
from payrelay.simulator.faults import SimulatorFaults
from payrelay.simulator.state import GatewaySimulator
from tests.support import (
    RABBITMQ_URL,
    delete_rabbitmq_topology,
    eventually,
    fresh_postgres_databases,
    require_server,
)

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

TOKEN, SECRET = "TEST-token", "whsec-kill"
PAYRELAY = [sys.executable, "-m", "payrelay"]
SLOW_GATEWAY = SimulatorFaults(api_slow_rate=1.0, api_slow_seconds=15.0)
RECOVERY_BUDGET = 5.0  # seconds from the kill to the payment applied (the lease is 3 s)


def serve_env(
    payments_url: str, orders_url: str, *, prefix: str, gateway_url: str
) -> dict[str, str]:
    """The environment of a `payrelay serve` on these databases, the test broker and gateway."""
    return {
        **os.environ,
        "PAYRELAY_PAYMENTS_DATABASE_URL": payments_url,
        "PAYRELAY_ORDERS_DATABASE_URL": orders_url,
        "PAYRELAY_BROKER_URL": RABBITMQ_URL,
        "PAYRELAY_BROKER_NAME_PREFIX": prefix,
        "PAYRELAY_GATEWAY_BASE_URL": gateway_url,
        "PAYRELAY_GATEWAY_ACCESS_TOKEN": TOKEN,
        "PAYRELAY_WEBHOOK_SECRETS": SECRET,
    }


@contextlib.contextmanager
def processors() -> Iterator[list[subprocess.Popen[bytes]]]:
    """A list to start processors into; every one is stopped (or reaped) afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    try:
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


def start_processor(
    started: list[subprocess.Popen[bytes]], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [*PAYRELAY, "serve", "--role", "processor"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    started.append(proc)
    return proc


@contextlib.asynccontextmanager
async def slow_gateway() -> AsyncIterator[tuple[GatewaySimulator, str]]:
    simulator = GatewaySimulator(access_token=TOKEN, webhook_secret=SECRET, faults=SLOW_GATEWAY)
    async with simulator, EmbeddedServer(create_simulator_app(simulator)) as server:
        yield simulator, server.base_url


async def notified_payment(simulator: GatewaySimulator, db: Database) -> None:
    """A payment at the gateway, and its notification recorded (as if its webhook came)."""
    preference = simulator.create_preference({"items": [
        {"title": "t", "quantity": 1, "unit_price": "10.00", "currency_id": "BRL"}
    ], "external_reference": "order-1"})
    payment_id = str(await simulator.pay(preference["id"], drop_notifications=True))
    log = SqlNotificationLog(db)
    try:
        await log.record(NotificationRecord(
            dedupe_key=f"mercadopago:payment:{payment_id}", provider="mercadopago",
            topic="payment", action="payment.created", resource_id=payment_id,
            request_id=None, received_at=datetime.now(UTC), ignored=False,
        ))
    finally:
        await log.close()


async def notification_row(db: Database) -> tuple[str, datetime, int]:
    n = t.notifications
    async with db.read() as conn:
        row = (await conn.execute(select(n.c.status, n.c.next_attempt_at, n.c.attempts))).one()
    return row.status, row.next_attempt_at, row.attempts


async def test_a_killed_processor_gives_its_claims_back_within_one_lease(
    tmp_path: Path, record_property: pytest.RecordProperty
):
    require_server("RabbitMQ", RABBITMQ_URL)
    prefix = f"t-{uuid.uuid4().hex[:8]}."
    async with fresh_postgres_databases(2) as (payments_url, orders_url), slow_gateway() as (
        simulator, gateway_url
    ):
        payments_db, orders_db = Database(payments_url), Database(orders_url)
        try:
            await upgrade(payments_db, Schema.PAYMENTS)
            await upgrade(orders_db, Schema.ORDERS)
            await notified_payment(simulator, payments_db)
            env = {
                **serve_env(payments_url, orders_url, prefix=prefix, gateway_url=gateway_url),
                "PAYRELAY_GATEWAY_TIMEOUT_SECONDS": "60",  # the slow call must not time out
                # The lease and the poll interval are left at their defaults (3 s, 0.2 s).
            }
            try:
                with processors() as started:
                    elapsed = await kill_one_and_time_the_other(
                        started, env, tmp_path, simulator, payments_db
                    )
            finally:
                await delete_rabbitmq_topology(prefix)
        finally:
            await payments_db.dispose()
            await orders_db.dispose()
    record_property("recovery_seconds", round(elapsed, 2))
    print(f"\nwork applied {elapsed:.2f}s after the kill -9")
    assert elapsed < RECOVERY_BUDGET


async def kill_one_and_time_the_other(
    started: list[subprocess.Popen[bytes]],
    env: dict[str, str],
    log_dir: Path,
    simulator: GatewaySimulator,
    payments_db: Database,
) -> float:
    first = await held_past_its_lease(started, env, log_dir, simulator, payments_db)
    simulator.set_faults(SimulatorFaults())  # the second processor's fetch is fast
    first.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    first.wait()

    async def applied() -> bool:
        async with payments_db.read() as conn:
            stored = (await conn.execute(select(t.payments.c.payment_id))).all()
        return bool(stored) and (await notification_row(payments_db))[0] == "processed"

    await eventually(applied, timeout=30, what="the second processor applying the payment")
    elapsed = time.monotonic() - killed_at
    assert all(proc.poll() is None for proc in started[1:])
    return elapsed


async def held_past_its_lease(
    started: list[subprocess.Popen[bytes]],
    env: dict[str, str],
    log_dir: Path,
    simulator: GatewaySimulator,
    payments_db: Database,
) -> subprocess.Popen[bytes]:
    """The first processor, stuck in the gateway past its first lease, the second polling;
    returns the first."""
    first = start_processor(started, env, log_dir / "first.log")

    async def stuck_in_the_gateway() -> bool:
        assert first.poll() is None, (log_dir / "first.log").read_text()
        return simulator.stats.api_slow >= 1

    await eventually(stuck_in_the_gateway, timeout=30, what="the first processor's fetch")
    claimed_until = (await notification_row(payments_db))[1]
    second = start_processor(started, env, log_dir / "second.log")

    async def serving() -> bool:
        assert second.poll() is None, (log_dir / "second.log").read_text()
        return "serving roles" in (log_dir / "second.log").read_text()

    await eventually(serving, timeout=30, what="the second processor polling")
    # Past the first claim's lease: only the heartbeat keeps the second one off the row.
    await asyncio.sleep(max(0.0, (claimed_until - datetime.now(UTC)).total_seconds()) + 1.0)
    status, renewed_until, attempts = await notification_row(payments_db)
    assert (status, attempts) == (NotificationStatus.RECEIVED, 0)
    assert renewed_until > claimed_until, "the claim was never renewed"
    assert simulator.stats.api_slow == 1, "the second processor took a row still held"
    return first
