"""The model tests' databases: migrated once per session, copied for every example."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.migrations import Schema, upgrade
from tests.model.world import sqlite_url

SHM = Path("/dev/shm")


async def _migrate(folder: Path) -> None:
    for schema in (Schema.PAYMENTS, Schema.ORDERS):
        db = Database(sqlite_url(folder, schema.value))
        try:
            await upgrade(db, schema)
        finally:
            await db.dispose()


@pytest.fixture(scope="session")
def model_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory with payments.db and orders.db at head, copied by each example.

    On a RAM disk where there is one: every commit fsyncs (synchronous=FULL), and on a
    real disk those fsyncs, not payrelay, would take most of the machine's time."""
    if SHM.is_dir():
        root = Path(tempfile.mkdtemp(prefix="payrelay-model-", dir=SHM))
    else:
        root = tmp_path_factory.mktemp("model")
    folder = root / "template"
    folder.mkdir()
    asyncio.run(_migrate(folder))
    yield folder
    shutil.rmtree(root, ignore_errors=True)
