"""Creating and dropping whole PostgreSQL databases: for the demo and the test suite."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy.engine import make_url

from payrelay.domain.errors import StorageUnavailable


@contextlib.asynccontextmanager
async def scratch_databases(server_url: str, names: list[str]) -> AsyncIterator[list[str]]:
    """New empty databases beside `server_url`'s, yielded as URLs and dropped afterwards.

    Each name gets a random suffix, so concurrent runs never meet.
    """
    base = make_url(server_url)
    try:
        admin = await asyncpg.connect(
            host=base.host,
            port=base.port or 5432,
            user=base.username,
            password=base.password,
            database=base.database,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise StorageUnavailable(f"PostgreSQL unreachable: {type(exc).__name__}") from exc
    unique = [f"{name}_{uuid.uuid4().hex[:10]}" for name in names]
    try:
        for name in unique:
            await admin.execute(f'CREATE DATABASE "{name}"')
        yield [base.set(database=n).render_as_string(hide_password=False) for n in unique]
    finally:
        for name in unique:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
