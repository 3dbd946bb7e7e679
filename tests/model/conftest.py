"""The model tests' databases: migrated once per session, copied for every example."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.migrations import Schema, upgrade
from tests.model.world import sqlite_url


async def _migrate(folder: Path) -> None:
    for schema in (Schema.PAYMENTS, Schema.ORDERS):
        db = Database(sqlite_url(folder, schema.value))
        try:
            await upgrade(db, schema)
        finally:
            await db.dispose()


@pytest.fixture(scope="session")
def model_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with payments.db and orders.db at head, copied by each example."""
    folder = tmp_path_factory.mktemp("model-template")
    asyncio.run(_migrate(folder))
    return folder
