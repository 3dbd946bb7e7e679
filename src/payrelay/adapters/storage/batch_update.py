"""One UPDATE for a whole batch of rows, each checked against the version its writer read.

PostgreSQL gets `UPDATE … FROM unnest(arrays) … RETURNING key`: one statement whose text
does not depend on the batch's size, so SQLAlchemy compiles it once and asyncpg prepares
it once, and RETURNING says which rows matched (asyncpg's executemany cannot). SQLite has
one writer, whose transaction (BEGIN IMMEDIATE) holds the whole database: it reads the
batch's versions in one SELECT and runs one compiled UPDATE over the rows that match, as
an executemany; nobody can write between the two.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

__all__ = ["Columns", "update_batch"]

EXPECTED = "expected"
"""The version each row's writer read: a row is written only over that version."""


class Columns:
    """A batch's columns by name, as the SET clause and the WHERE clause see them."""

    def __init__(self, columns: Mapping[str, ColumnElement[Any]]) -> None:
        self._columns = columns

    def __getattr__(self, name: str) -> ColumnElement[Any]:
        try:
            return self._columns[name]
        except KeyError:
            raise AttributeError(name) from None


async def update_batch(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: str,
    values: Callable[[Columns], Mapping[str, Any]],
) -> set[Any]:
    """UPDATE `table` SET values(batch) WHERE key and version match each row's `key` and
    `expected`; the keys of the rows written. `rows` is in lock order, one per key."""
    if not rows:
        return set()
    types: dict[str, TypeEngine[Any]] = {
        name: Integer() if name == EXPECTED else table.c[name].type for name in rows[0]
    }
    if conn.dialect.name == "postgresql":
        return await _unnest(conn, table, rows, key, values, types)
    return await _executemany(conn, table, rows, key, values, types)


async def _unnest(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]], key: str,
    values: Callable[[Columns], Mapping[str, Any]], types: dict[str, TypeEngine[Any]],
) -> set[Any]:
    names = list(types)
    arrays = [bindparam(f"batch_{n}", [row[n] for row in rows], type_=ARRAY(types[n]))
              for n in names]
    batch = func.unnest(*arrays).table_valued(*names).render_derived(name="batch")
    columns = Columns({n: batch.c[n] for n in names})
    statement = (
        update(table)
        .where(table.c[key] == getattr(columns, key),
               table.c.version == getattr(columns, EXPECTED))
        .values(dict(values(columns)))
        .returning(table.c[key])
    )
    return set((await conn.execute(statement)).scalars())


async def _executemany(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]], key: str,
    values: Callable[[Columns], Mapping[str, Any]], types: dict[str, TypeEngine[Any]],
) -> set[Any]:
    columns = Columns({n: bindparam(f"batch_{n}", type_=types[n]) for n in types})
    statement = (
        update(table)
        .where(table.c[key] == getattr(columns, key),
               table.c.version == getattr(columns, EXPECTED))
        .values(dict(values(columns)))
    )
    keys = [row[key] for row in rows]
    found = await conn.execute(
        select(table.c[key], table.c.version).where(table.c[key].in_(keys)))
    versions = {row[0]: row[1] for row in found}
    matching = [row for row in rows if versions.get(row[key]) == row[EXPECTED]]
    if matching:
        params = [{f"batch_{n}": v for n, v in row.items()} for row in matching]
        written = (await conn.execute(statement, params)).rowcount
        if written != len(matching):  # the write lock makes this impossible: say so loudly
            raise RuntimeError(f"{table.name}: {written} of {len(matching)} rows written")
    return {row[key] for row in matching}
