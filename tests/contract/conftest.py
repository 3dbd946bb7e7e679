"""One storage, three ways: `storage` is the memory adapters, SQLite or PostgreSQL.

The SQL ones are wired as bootstrap.py wires them. Migrating a database per test would
take most of the suite's time, so each backend is migrated once per session: SQLite test
databases are copies of a migrated file, PostgreSQL ones are one migrated pair emptied
(DELETE) before each test. PostgreSQL's absence skips its tests,
except in CI (`CI=true`), where it fails them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from payrelay.adapters import memory
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.dead_letters import SqlDeadLetterBox
from payrelay.adapters.storage.migrations import Schema, upgrade
from payrelay.adapters.storage.orders import SqlOrdersUnitOfWork
from payrelay.adapters.storage.payments import (
    SqlNotificationLog,
    SqlNotificationQueue,
    SqlPaymentsUnitOfWork,
)
from payrelay.adapters.storage.queries import order_timeline
from payrelay.adapters.storage.reconciliation import SqlReconciliationStore
from payrelay.adapters.storage.refunds import SqlRefundQueue
from payrelay.ports import (
    DeadLetterBox,
    NotificationLog,
    NotificationQueue,
    OrdersUnitOfWork,
    OutboxRelayStore,
    PaymentsUnitOfWork,
    ReconciliationStore,
    RefundQueue,
)
from tests.contract.builders import AT
from tests.simulated_gateway import ManualClock
from tests.support import POSTGRES_URL, require_server

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SCHEMAS = (Schema.PAYMENTS, Schema.ORDERS)


@dataclass
class Storage:
    """Every storage port of both databases, on one backend, with the clock they share."""

    backend: str
    clock: ManualClock
    payments: PaymentsUnitOfWork
    orders: OrdersUnitOfWork
    notification_log: NotificationLog
    notifications: NotificationQueue
    refunds: RefundQueue
    payments_relay: OutboxRelayStore
    orders_relay: OutboxRelayStore
    reconciliation: ReconciliationStore
    dead_letters: DeadLetterBox
    timeline: Callable[[str], Awaitable[list[tuple[str, str, str | None]]]]
    """(side, step, detail) of an order's timeline rows: the ports write it, never read it."""


def memory_storage(clock: ManualClock) -> Storage:
    payments, orders = memory.payments_database(), memory.orders_database()
    p_uow = memory.MemoryPaymentsUnitOfWork(payments, clock)
    o_uow = memory.MemoryOrdersUnitOfWork(orders, clock)
    return Storage(
        "memory", clock, p_uow, o_uow, memory.MemoryNotificationLog(payments),
        memory.MemoryNotificationQueue(payments), memory.MemoryRefundQueue(payments),
        p_uow.relay_store, o_uow.relay_store, memory.MemoryReconciliationStore(payments),
        memory.MemoryDeadLetterBox(payments=payments, orders=orders, clock=clock),
        functools.partial(_memory_timeline, payments, orders),
    )


async def _memory_timeline(
    payments: memory.PaymentsDatabase, orders: memory.OrdersDatabase, order_id: str
) -> list[tuple[str, str, str | None]]:
    return [
        (side, row.step, row.detail)
        for side, db in (("payments", payments), ("orders", orders))
        for row in db.state.timeline if row.order_id == order_id
    ]


@contextlib.asynccontextmanager
async def sql_storage(backend: str, urls: list[str], clock: ManualClock, *, empty: bool
                      ) -> AsyncIterator[Storage]:
    payments, orders = Database(urls[0]), Database(urls[1])
    log = SqlNotificationLog(payments)
    try:
        if empty:
            await _empty([payments, orders])
        p_uow = SqlPaymentsUnitOfWork(payments, clock)
        o_uow = SqlOrdersUnitOfWork(orders, clock)
        yield Storage(
            backend, clock, p_uow, o_uow, log, SqlNotificationQueue(payments),
            SqlRefundQueue(payments), p_uow.relay_store, o_uow.relay_store,
            SqlReconciliationStore(payments),
            SqlDeadLetterBox(payments=payments, orders=orders, clock=clock),
            functools.partial(_sql_timeline, payments, orders),
        )
    finally:
        await log.close()
        await payments.dispose()
        await orders.dispose()


def run_apart(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run to completion on a loop of its own: session fixtures are first asked for from
    inside a test's running loop, where asyncio.run refuses to start another."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


async def _sql_timeline(
    payments: Database, orders: Database, order_id: str
) -> list[tuple[str, str, str | None]]:
    entries = await order_timeline(payments, orders, order_id)
    return [(e.side, e.step, e.detail) for e in sorted(entries, key=lambda e: e.side)]


async def _migrate(urls: list[str]) -> None:
    for url, schema in zip(urls, SCHEMAS, strict=True):
        db = Database(url)
        try:
            await upgrade(db, schema)
        finally:
            await db.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with payments.db and orders.db at head, copied by each test."""
    folder = tmp_path_factory.mktemp("sqlite-template")
    run_apart(_migrate([_sqlite_url(folder, s) for s in SCHEMAS]))
    return folder


def _copy_files(source: Path, target: Path) -> None:
    for item in source.iterdir():
        shutil.copy(item, target / item.name)


def _sqlite_url(folder: Path, schema: Schema) -> str:
    return f"sqlite+aiosqlite:///{folder / f'{schema.value}.db'}"


@pytest.fixture(scope="session")
def postgres_pair() -> Iterator[list[str]]:
    """Two migrated databases on the test server for the whole session, then dropped."""
    require_server("PostgreSQL", POSTGRES_URL)
    names = [f"payrelay_contract_{uuid.uuid4().hex[:10]}_{s.value}" for s in SCHEMAS]
    run_apart(_admin([f'CREATE DATABASE "{n}"' for n in names]))
    base = make_url(POSTGRES_URL)
    urls = [base.set(database=n).render_as_string(hide_password=False) for n in names]
    try:
        run_apart(_migrate(urls))
        yield urls
    finally:
        run_apart(_admin([f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in names]))


async def _admin(statements: list[str]) -> None:
    base = make_url(POSTGRES_URL)
    conn = await asyncpg.connect(host=base.host, port=base.port or 5432, user=base.username,
                                 password=base.password, database=base.database)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _empty(dbs: list[Database]) -> None:
    """DELETE, not TRUNCATE: on a few rows it is several times faster; ids are not reset,
    and no test depends on them."""
    for db, schema in zip(dbs, SCHEMAS, strict=True):
        async with db.transaction() as conn:
            for table in reversed(schema.metadata.sorted_tables):
                await conn.execute(table.delete())


@pytest.fixture(params=BACKENDS)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    clock = ManualClock(AT)
    if request.param == "memory":
        yield memory_storage(clock)
        return
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        _copy_files(template, tmp_path)
        urls = [_sqlite_url(tmp_path, s) for s in SCHEMAS]
    else:
        urls = request.getfixturevalue("postgres_pair")
    async with sql_storage(request.param, urls, clock, empty=request.param == "postgres"
                           ) as built:
        yield built
