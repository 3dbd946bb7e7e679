"""Alembic migrations for both databases, run through payrelay's own async engines.

`payrelay migrate` upgrades both; every service checks at start-up that its database is at
head and refuses to run on an older schema rather than fail half-way through a request.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData

from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.tables import orders_metadata, payments_metadata
from payrelay.domain.errors import SchemaBehind

_HERE = Path(__file__).parent


class Schema(StrEnum):
    PAYMENTS = "payments"
    """Notifications, checkouts, payments, and the payments outbox/inbox."""
    ORDERS = "orders"
    """Orders, what each payment did to them, and the orders outbox/inbox."""

    @property
    def metadata(self) -> MetaData:
        return payments_metadata if self is Schema.PAYMENTS else orders_metadata


def alembic_config(schema: Schema) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE / schema.value))
    config.attributes["metadata"] = schema.metadata
    return config


def head_revision(schema: Schema) -> str:
    head = ScriptDirectory.from_config(alembic_config(schema)).get_current_head()
    assert head is not None
    return head


async def upgrade(db: Database, schema: Schema) -> None:
    """Bring the database to head; safe to run again (and from several replicas)."""

    def run(connection: Connection) -> None:
        config = alembic_config(schema)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with db.transaction() as conn:
        await conn.run_sync(run)


async def upgrade_database(url: str, schema: Schema) -> None:
    """`upgrade` on a database of its own, disposed of afterwards (`payrelay migrate`)."""
    db = Database(url)
    try:
        await upgrade(db, schema)
    finally:
        await db.dispose()


async def current_revision(db: Database) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with db.read() as conn:
        return await conn.run_sync(read)


async def ensure_current(db: Database, schema: Schema) -> None:
    """Raise SchemaBehind unless the database is exactly at this code's head."""
    current, head = await current_revision(db), head_revision(schema)
    if current != head:
        raise SchemaBehind(
            f"the {schema.value} database schema is at {current or 'nothing'}, "
            f"this payrelay needs {head}: run `payrelay migrate`"
        )
