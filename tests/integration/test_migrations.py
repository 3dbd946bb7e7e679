"""Schema migrations: from an empty database to head, and refusal to run on an old schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

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


async def test_services_refuse_to_start_on_an_unmigrated_database(tmp_path: Path):
    settings = embedded_settings(tmp_path)
    with pytest.raises(SchemaBehind, match="run `payrelay migrate`"):
        await bootstrap(settings)
    await migrate(settings)
    system = await bootstrap(settings)
    await system.close()
