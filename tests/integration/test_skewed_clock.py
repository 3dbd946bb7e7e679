"""A processor whose wall clock is ten minutes ahead still stamps times by the server's clock.

Two real `payrelay serve` processes on PostgreSQL + RabbitMQ: a processor started under
libfaketime 600 s ahead, and a payments relay (with an order consumer, whose queue the
events are routed to) on the true clock. The processor stores the
payment and its `payment.approved` event; had it stamped the event's due time with its own
clock, the relay would not claim it for ten minutes (what `payrelay chaos --faults all`
found: three approvals unpublished at the end). With time read from the database server,
the relay publishes it within seconds, and every time the processor wrote is the server's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.migrations import Schema, upgrade
from payrelay.chaos.skew import FaketimeMissing, faketime_library, skewed_env
from payrelay.domain.work import OutboxStatus
from payrelay.simulator.faults import SimulatorFaults
from tests.integration.test_worker_kill import (
    notified_payment,
    processors,
    serve_env,
    slow_gateway,
)
from tests.support import (
    RABBITMQ_URL,
    delete_rabbitmq_topology,
    eventually,
    fresh_postgres_databases,
    require_server,
)

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

AHEAD = 600.0


def _faketime() -> str:
    try:
        return faketime_library()
    except FaketimeMissing as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(exc))


async def test_a_processor_ten_minutes_ahead_writes_the_servers_times(tmp_path: Path) -> None:
    require_server("RabbitMQ", RABBITMQ_URL)
    library = _faketime()
    prefix = f"t-{uuid.uuid4().hex[:8]}."
    async with fresh_postgres_databases(2) as (payments_url, orders_url), slow_gateway() as (
        simulator, gateway_url
    ):
        simulator.set_faults(SimulatorFaults())
        payments_db, orders_db = Database(payments_url), Database(orders_url)
        try:
            await upgrade(payments_db, Schema.PAYMENTS)
            await upgrade(orders_db, Schema.ORDERS)
            await notified_payment(simulator, payments_db)
            env = serve_env(payments_url, orders_url, prefix=prefix, gateway_url=gateway_url)
            try:
                with processors() as started:
                    await _published_by_a_relay_on_the_true_clock(
                        started, env, skewed_env(env, AHEAD, library), tmp_path, payments_db
                    )
            finally:
                await delete_rabbitmq_topology(prefix)
        finally:
            await payments_db.dispose()
            await orders_db.dispose()


async def _published_by_a_relay_on_the_true_clock(
    started: list[subprocess.Popen[bytes]], env: dict[str, str], skewed: dict[str, str],
    logs: Path, db: Database,
) -> None:
    for name, roles, child_env in (("processor", ["processor"], skewed),
                                   ("relay", ["payments-relay", "order-consumer"], env)):
        with (logs / f"{name}.log").open("wb") as out:
            args = [a for role in roles for a in ("--role", role)]
            started.append(subprocess.Popen([sys.executable, "-m", "payrelay", "serve", *args],
                                            env=child_env, stdout=out, stderr=subprocess.STDOUT))

    async def published() -> bool:
        for proc, name in zip(started, ("processor", "relay"), strict=True):
            assert proc.poll() is None, (logs / f"{name}.log").read_text()
        async with db.read() as conn:
            rows = (await conn.execute(select(t.payments_outbox.c.status))).all()
        return bool(rows) and all(row.status == OutboxStatus.SENT for row in rows)

    await eventually(published, timeout=30, what="the approval published by the relay")
    now = datetime.now(UTC)  # this machine's true clock is the server's
    async with db.read() as conn:
        outbox = (await conn.execute(select(t.payments_outbox))).all()
        payment = (await conn.execute(select(t.payments))).one()
        notification = (await conn.execute(select(t.notifications))).one()
    written = [row.created_at for row in outbox] + [notification.processed_at]
    written += [getattr(payment, c) for c in ("created_at", "updated_at") if hasattr(payment, c)]
    for at in written:
        assert abs(at - now) < timedelta(seconds=60), f"{at} is not the server's time ({now})"
