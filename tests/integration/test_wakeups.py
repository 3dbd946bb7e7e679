"""Cross-process wake-ups on PostgreSQL: work committed by one System wakes another's worker
long before its poll interval would, a killed listener comes back, and while it is away the
workers still poll.

The two Systems of a test share the databases and nothing else: each has its own engines,
its own in-process wake events and its own listener connection, as two processes would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.migrations import Schema, upgrade_database
from payrelay.adapters.storage.orders import SqlOrdersUnitOfWork
from payrelay.adapters.storage.payments import (
    SqlNotificationQueue,
    SqlNotifications,
    SqlPaymentsUnitOfWork,
)
from payrelay.adapters.storage.wakeups import PostgresWakeups, asyncpg_dsn
from payrelay.bootstrap import Role, System, bootstrap
from payrelay.config import Settings
from payrelay.domain.retry import Backoff
from payrelay.ports import NotificationRecord, WakeChannel
from tests.integration.test_concurrent_workers import approved
from tests.simulated_gateway import SimulatedGateway, simulated_gateway
from tests.support import adapters_of, eventually, fresh_postgres_databases

pytestmark = pytest.mark.postgres

POLL = 5.0  # long enough that only a wake-up can explain a quick pick-up
QUICKLY = 2.0  # a generous bound, far under POLL


@contextlib.asynccontextmanager
async def two_systems(
    mp: SimulatedGateway, **settings: Any
) -> AsyncIterator[tuple[System, System]]:
    """A writer (only records notifications) and a worker (runs the processor)."""
    async with fresh_postgres_databases(2) as (payments_url, orders_url):
        await upgrade_database(payments_url, Schema.PAYMENTS)
        await upgrade_database(orders_url, Schema.ORDERS)
        values: dict[str, Any] = {
            "payments_database_url": payments_url, "orders_database_url": orders_url,
            "broker_url": "local", "poll_interval_seconds": POLL, **settings,
        }
        writer = await bootstrap(Settings(**values), gateway=mp.gateway)
        worker = await bootstrap(Settings(**values), gateway=mp.gateway)
        try:
            yield writer, worker
        finally:
            await worker.close()
            await writer.close()


async def listener_pids(system: System) -> list[int]:
    db = adapters_of(system).payments_db
    async with db.read() as conn:
        rows = await conn.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND query LIKE 'LISTEN %'"
        ))
        return [int(pid) for pid in rows.scalars()]


async def listening(system: System, *, other_than: tuple[int, ...] = ()) -> int:
    """The pid of the listening backend, once there is one (not among `other_than`)."""
    found: list[int] = []

    async def check() -> bool:
        found[:] = [p for p in await listener_pids(system) if p not in other_than]
        return bool(found)

    await eventually(check, timeout=10, what="a LISTEN connection")
    return found[0]


async def pay(mp: SimulatedGateway) -> str:
    preference = mp.checkout(f"order-{uuid.uuid4().hex[:8]}")
    return str(await mp.simulator.pay(preference, "approve"))


async def record(system: System, payment_id: str) -> None:
    now = datetime.now(UTC)
    await system.payments.notification_log.record(NotificationRecord(
        dedupe_key=f"mercadopago:payment:{payment_id}:{uuid.uuid4().hex}",
        provider="mercadopago", topic="payment", action="payment.updated",
        resource_id=payment_id, request_id=None, received_at=now, ignored=False,
    ))


async def processed_within(system: System, payment_id: str, seconds: float) -> float:
    db = adapters_of(system).payments_db
    started = time.monotonic()

    async def stored() -> bool:
        async with db.read() as conn:
            query = select(t.payments.c.status).where(t.payments.c.payment_id == payment_id)
            return (await conn.execute(query)).first() is not None

    await eventually(stored, timeout=seconds, what=f"payment {payment_id} processed")
    return time.monotonic() - started


async def idle_processor(worker: System) -> int:
    """Start the processor and let it go idle (its first steps find nothing)."""
    await worker.start_workers({Role.PROCESSOR})
    pid = await listening(worker)
    await asyncio.sleep(0.3)  # past the step the listener's connect wakes it for
    return pid


async def test_a_notification_recorded_by_one_system_wakes_the_processor_of_another():
    async with simulated_gateway() as mp, two_systems(mp) as (writer, worker):
        await idle_processor(worker)
        payment_id = await pay(mp)
        await record(writer, payment_id)
        assert await processed_within(worker, payment_id, QUICKLY) < QUICKLY


async def test_a_killed_listener_reconnects_and_wakes_again(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="payrelay.adapters.storage.wakeups")
    async with simulated_gateway() as mp, two_systems(mp) as (writer, worker):
        first = await idle_processor(worker)
        async with adapters_of(writer).payments_db.read() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        await listening(worker, other_than=(first,))
        await asyncio.sleep(0.3)
        payment_id = await pay(mp)
        await record(writer, payment_id)
        assert await processed_within(worker, payment_id, QUICKLY) < QUICKLY
        lost = [r for r in caplog.records if "lost" in r.getMessage()]
        assert len(lost) == 1, caplog.text


async def test_without_a_listener_the_workers_still_poll(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="payrelay.adapters.storage.wakeups")
    async with simulated_gateway() as mp, two_systems(mp, poll_interval_seconds=0.3) as (
        writer, worker
    ):
        # Nothing listens on port 1: every connect fails, again and again.
        unreachable = {WakeChannel.NOTIFICATIONS: "postgresql://postgres@127.0.0.1:1/none"}
        worker.wakeups = PostgresWakeups(unreachable, reconnect=Backoff(base=0.05, cap=0.1))
        await worker.start_workers({Role.PROCESSOR})
        await asyncio.sleep(0.5)  # several failed connects
        payment_id = await pay(mp)
        await record(writer, payment_id)
        assert await processed_within(worker, payment_id, QUICKLY) < QUICKLY
        lost = [r for r in caplog.records if "lost" in r.getMessage()]
        assert len(lost) == 1, caplog.text  # once per outage, not once per try


@contextlib.asynccontextmanager
async def woken_by(url: str, channel: WakeChannel) -> AsyncIterator[asyncio.Event]:
    """An event that a listener on `url` sets for news on `channel` (cleared once it is up)."""
    wake, stop = asyncio.Event(), asyncio.Event()
    wakeups = PostgresWakeups({channel: asyncpg_dsn(url)})
    listener = asyncio.create_task(wakeups.listen({channel: wake}, stop=stop))
    try:
        await eventually(_set(wake), what="the listener's first wake-up")  # it is connected
        wake.clear()
        yield wake
    finally:
        stop.set()
        await listener


async def quiet(wake: asyncio.Event, what: str) -> None:
    await asyncio.sleep(0.3)
    assert not wake.is_set(), f"{what} woke a worker"


async def test_only_committed_due_notifications_notify():
    async with fresh_postgres_databases(1) as (url,):
        await upgrade_database(url, Schema.PAYMENTS)
        db = Database(url)
        try:
            async with woken_by(url, WakeChannel.NOTIFICATIONS) as wake:
                with contextlib.suppress(RuntimeError):
                    async with db.transaction() as conn:
                        await SqlNotifications(conn, db).record(_notification("rolled-back"))
                        raise RuntimeError("roll back")
                await quiet(wake, "a rolled-back insert")
                async with db.transaction() as conn:
                    await SqlNotifications(conn, db).record(_notification("committed"))
                await eventually(_set(wake), timeout=QUICKLY, what="a wake-up on commit")
                wake.clear()
                now = datetime.now(UTC)
                queue = SqlNotificationQueue(db)
                assert await queue.claim_due(limit=10, now=now, lease=timedelta(seconds=30))
                await quiet(wake, "a claim")
        finally:
            await db.dispose()


@pytest.mark.parametrize("side", ["payments", "orders"])
async def test_outbox_rows_notify_when_added_and_when_requeued(side: str):
    schema, channel = {
        "payments": (Schema.PAYMENTS, WakeChannel.PAYMENTS_OUTBOX),
        "orders": (Schema.ORDERS, WakeChannel.ORDERS_OUTBOX),
    }[side]
    async with fresh_postgres_databases(1) as (url,):
        await upgrade_database(url, schema)
        db = Database(url)
        uow: SqlPaymentsUnitOfWork | SqlOrdersUnitOfWork = (
            SqlPaymentsUnitOfWork(db, _now) if side == "payments" else SqlOrdersUnitOfWork(db, _now)
        )
        try:
            async with woken_by(url, channel) as wake:
                envelope = approved("order-1", "1")
                async with uow.begin() as tx:
                    await tx.outbox.add(envelope, exchange="ex")
                await eventually(_set(wake), timeout=QUICKLY, what="a wake-up for a new row")
                wake.clear()
                claimed = await uow.relay_store.claim_due(
                    limit=10, now=_now(), lease=timedelta(seconds=30)
                )
                await uow.relay_store.mark_sent([m.message_id for m in claimed], now=_now())
                await quiet(wake, "a claim, or marking sent,")
                async with uow.begin() as tx:  # the reconciler's resend
                    assert await tx.outbox.requeue(envelope.message_id)
                await eventually(_set(wake), timeout=QUICKLY, what="a wake-up for a requeue")
        finally:
            await db.dispose()


def _now() -> datetime:
    return datetime.now(UTC)


def _set(event: asyncio.Event) -> Any:
    async def check() -> bool:
        return event.is_set()

    return check


def _notification(key: str) -> NotificationRecord:
    return NotificationRecord(
        dedupe_key=key, provider="mercadopago", topic="payment", action=None,
        resource_id="1", request_id=None, received_at=datetime.now(UTC), ignored=False,
    )
