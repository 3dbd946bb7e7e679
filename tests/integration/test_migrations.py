"""Schema migrations: from an empty database to head, and refusal to run on an old schema."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import CheckConstraint, insert, inspect, update

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.migrations import (
    Schema,
    SchemaBehind,
    current_revision,
    ensure_current,
    head_revision,
    upgrade,
)
from payrelay.bootstrap import bootstrap, migrate
from payrelay.domain.errors import UnstorableRecord
from payrelay.domain.work import NotificationStatus
from payrelay.entrypoints.embedded import embedded_settings
from tests.support import fresh_postgres_databases


async def tables_of(db: Database) -> set[str]:
    async with db.read() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def check_empty_to_head(url: str, schema: Schema) -> None:
    db = Database(url)
    try:
        with pytest.raises(SchemaBehind, match="payrelay migrate"):
            await ensure_current(db, schema)
        await upgrade(db, schema)
        await upgrade(db, schema)  # again: a no-op, as a second replica would run it
        assert await current_revision(db) == head_revision(schema)
        await ensure_current(db, schema)
        assert set(schema.metadata.tables) <= await tables_of(db)
    finally:
        await db.dispose()


@pytest.mark.parametrize("schema", list(Schema))
async def test_sqlite_from_empty_to_head(tmp_path: Path, schema: Schema):
    await check_empty_to_head(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", schema)


@pytest.mark.postgres
@pytest.mark.parametrize("schema", list(Schema))
async def test_postgres_from_empty_to_head(schema: Schema):
    async with fresh_postgres_databases(1) as (url,):
        await check_empty_to_head(url, schema)


async def check_models_match_migrations(url: str, schema: Schema) -> None:
    """What the migrations build is what tables.py declares: no column left to add."""
    db = Database(url)
    try:
        await upgrade(db, schema)
        async with db.read() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), schema.metadata)
            )
        assert diff == []
    finally:
        await db.dispose()


@pytest.mark.parametrize("schema", list(Schema))
async def test_sqlite_migrations_match_the_models(tmp_path: Path, schema: Schema):
    await check_models_match_migrations(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", schema)


@pytest.mark.postgres
@pytest.mark.parametrize("schema", list(Schema))
async def test_postgres_migrations_match_the_models(schema: Schema):
    async with fresh_postgres_databases(1) as (url,):
        await check_models_match_migrations(url, schema)


async def check_constraints_match_the_models(url: str, schema: Schema) -> None:
    """compare_metadata does not compare CHECK constraints: every one tables.py declares is
    in the migrated schema (SQLite's batch copies keep the earlier ones), and no other."""
    db = Database(url)
    try:
        await upgrade(db, schema)
        async with db.read() as conn:
            live = await conn.run_sync(lambda c: {
                table: {ck["name"] for ck in inspect(c).get_check_constraints(table)}
                for table in schema.metadata.tables
            })
        declared = {
            name: {ck.name for ck in table.constraints if isinstance(ck, CheckConstraint)}
            for name, table in schema.metadata.tables.items()
        }
        assert live == declared
        assert "ck_outbox_status" in live["outbox"]
    finally:
        await db.dispose()


@pytest.mark.parametrize("schema", list(Schema))
async def test_sqlite_migrations_keep_the_models_checks(tmp_path: Path, schema: Schema):
    await check_constraints_match_the_models(
        f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", schema
    )


@pytest.mark.postgres
@pytest.mark.parametrize("schema", list(Schema))
async def test_postgres_migrations_keep_the_models_checks(schema: Schema):
    async with fresh_postgres_databases(1) as (url,):
        await check_constraints_match_the_models(url, schema)


async def check_unknown_status_is_refused(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db, Schema.PAYMENTS)
        now = datetime.now(UTC)
        row = {"dedupe_key": "k", "provider": "mercadopago", "topic": "payment",
               "status": NotificationStatus.RECEIVED, "attempts": 0, "received_at": now,
               "next_attempt_at": now}
        async with db.transaction() as conn:
            await conn.execute(insert(t.notifications).values(row))
        with pytest.raises(UnstorableRecord):
            async with db.transaction() as conn:
                await conn.execute(update(t.notifications).values(status="recieved"))
    finally:
        await db.dispose()


async def test_sqlite_refuses_a_status_outside_its_enum(tmp_path: Path):
    await check_unknown_status_is_refused(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")


@pytest.mark.postgres
async def test_postgres_refuses_a_status_outside_its_enum():
    async with fresh_postgres_databases(1) as (url,):
        await check_unknown_status_is_refused(url)


async def test_services_refuse_to_start_on_an_unmigrated_database(tmp_path: Path):
    settings = embedded_settings(tmp_path)
    with pytest.raises(SchemaBehind, match="run `payrelay migrate`"):
        await bootstrap(settings)
    await migrate(settings)
    system = await bootstrap(settings)
    await system.close()
