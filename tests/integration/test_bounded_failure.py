"""Failure is bounded the right way: outages are waited out, dead ends are given up, listed
and replayable."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.entrypoints.embedded import EmbeddedStack
from tests.integration.test_reconciler import QUICK, paid_and_searched
from tests.integration.test_webhooks import post, signed
from tests.support import POSTGRES_URL, Customer, StackFactory, adapters_of, eventually

PAYRELAY = str(Path(sys.executable).with_name("payrelay"))


async def cli(stack: EmbeddedStack, *args: str) -> subprocess.CompletedProcess[str]:
    """`payrelay …` against the stack's databases, as an operator would run it.

    In a thread: the stack keeps running meanwhile, as a live system would, so a write
    it has open when the command starts commits instead of holding SQLite's lock."""
    env = {
        **os.environ,
        "PAYRELAY_PAYMENTS_DATABASE_URL": stack.settings.payments_database_url,
        "PAYRELAY_ORDERS_DATABASE_URL": stack.settings.orders_database_url,
        "COLUMNS": "250",
    }
    return await asyncio.to_thread(
        subprocess.run, [PAYRELAY, *args], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )


async def notification_status(db: Database, payment_id: str) -> str | None:
    n = t.notifications
    async with db.read() as conn:
        status: str | None = (await conn.execute(
            select(n.c.status).where(n.c.resource_id == payment_id)
        )).scalar_one_or_none()
    return status


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_a_payment_that_stays_unknown_ends_dead_and_is_listed_and_replayable(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack(not_visible_grace_seconds=1.0) as stack:
        db = adapters_of(stack).payments_db
        response = await post(http, stack.payments_url, signed("777000111"))
        assert response.json() == {"status": "recorded"}

        async def dead() -> bool:
            return await notification_status(db, "777000111") == "dead"

        await eventually(dead, timeout=20, what="the unknown payment's notification dead")
        async with db.read() as conn:
            row = (await conn.execute(select(t.notifications))).one()
        assert row.attempts >= 2  # retried through the grace period, not given up at once
        assert row.last_error.startswith("not_visible: unknown to the gateway after 1s")
        assert "HTTP 404" in row.last_error

        listed = await cli(stack, "dlq", "list")
        assert listed.returncode == 0, listed.stderr
        assert f"notification-{row.id}" in listed.stdout
        assert "not_visible" in listed.stdout and "777000111" in listed.stdout

        replayed = await cli(stack, "dlq", "replay", f"notification-{row.id}")
        assert replayed.returncode == 0, replayed.stderr
        # Due again from a clean count: it runs the same path, and ends dead again.
        async with db.read() as conn:
            failures = (await conn.execute(select(t.notifications.c.failures))).scalar_one()
        assert failures in (0, 1)
        await eventually(dead, timeout=20, what="dead again after its grace period")


async def _set_connections(database: str, *, allowed: bool) -> None:
    """Open or close one database to new connections, and cut the ones it has."""
    url = make_url(POSTGRES_URL)
    conn = await asyncpg.connect(host=url.host, port=url.port or 5432, user=url.username,
                                 database=url.database)
    try:
        await conn.execute(
            f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"true" if allowed else "false"}'
        )
        if not allowed:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                database,
            )
    finally:
        await conn.close()


OUTAGE_SECONDS = float(os.environ.get("PAYRELAY_TEST_OUTAGE_SECONDS", "30"))


@pytest.mark.parametrize("backend", ["postgres", "postgres+rabbitmq"], indirect=True)
async def test_an_order_database_outage_under_load_ends_with_every_order_paid_and_no_dead_letters(
    make_stack: StackFactory, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
):
    # A short retry schedule: if an outage spent attempts, it would dead-letter in < 1 s.
    async with make_stack(consumer_retry_delays="0.05,0.1,0.2", retry_cap_seconds=2.0) as stack:
        customer = Customer(stack, http)
        orders = [await customer.order(f"{20 + i}.00") for i in range(30)]
        preferences = [await customer.checkout(order_id) for order_id in orders]
        orders_db = make_url(stack.settings.orders_database_url).database
        assert orders_db is not None
        await _set_connections(orders_db, allowed=False)
        try:
            # Customers keep paying while the order database is down.
            for preference in preferences:
                await customer.pay(preference)
                await asyncio.sleep(OUTAGE_SECONDS / 2 / len(preferences))
            await asyncio.sleep(OUTAGE_SECONDS / 2)
        finally:
            await _set_connections(orders_db, allowed=True)
        for order_id in orders:
            await customer.wait_until_status(order_id, "paid", timeout=60)

        async def dead_letters(db: Database, table: object) -> int:
            async with db.read() as conn:
                return int((await conn.execute(
                    select(func.count()).select_from(table)  # type: ignore[arg-type]
                )).scalar_one())

        assert await dead_letters(adapters_of(stack).payments_db, t.payments_dead_letters) == 0
        assert await dead_letters(adapters_of(stack).orders_db, t.orders_dead_letters) == 0
        # The window was really open: the consumer failed on the outage, and said so.
        outage_lines = [r for r in caplog.records
                        if r.name == "payrelay.failures" and "unavailable" in r.getMessage()]
        assert outage_lines, "no failure was logged: the outage did not reach the consumer"
        assert any(getattr(r, "payment_id", None) and getattr(r, "order_id", None)
                   for r in outage_lines)


@pytest.mark.parametrize("backend", ["postgres", "postgres+rabbitmq"], indirect=True)
async def test_a_late_second_payment_whose_webhook_died_in_a_database_outage_is_refunded_once(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack(**QUICK) as stack:
        customer = Customer(stack, http)
        order_id, preference_id, first = await paid_and_searched(customer, "30.00")
        payments_db = make_url(stack.settings.payments_database_url).database
        assert payments_db is not None
        await _set_connections(payments_db, allowed=False)
        try:
            # Every delivery of the webhook meets the outage (503) until the gateway gives up.
            second = await customer.pay(preference_id)

            async def gateway_gave_up() -> bool:
                return stack.simulator.stats.failed >= 1

            await eventually(gateway_gave_up, timeout=20, what="the gateway giving up")
        finally:
            await _set_connections(payments_db, allowed=True)

        async def refunded() -> bool:
            return stack.simulator.ledger_entry(order_id).refunded > 0

        await eventually(refunded, timeout=30, what="the second payment refunded")
        await asyncio.sleep(0.5)  # time for a wrong second refund to show, were there one
        entry = stack.simulator.ledger_entry(order_id)
        assert stack.simulator.refunds(first) == []
        assert [r["amount"] for r in stack.simulator.refunds(second)] == [Decimal("30.00")]
        assert (entry.charged, entry.refunded) == (Decimal("60.00"), Decimal("30.00"))
        assert (await customer.order_status(order_id))["paid_by"] == first
        async with adapters_of(stack).payments_db.read() as conn:
            actions = (await conn.execute(select(t.notifications.c.action).where(
                t.notifications.c.resource_id == second))).scalars().all()
        assert "reconciler" in actions  # the webhook never got in: the sweep found it
