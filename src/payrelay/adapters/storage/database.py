"""One database (payments or orders): engine set-up, transactions, error translation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    InvalidRequestError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from payrelay.domain.errors import StorageRefused, StorageUnavailable, UnstorableRecord


class Database:
    """An async engine plus the rules payrelay needs from it.

    SQLite allows one writer at a time; rather than let concurrent transactions fail with
    "database is locked", write transactions in this process queue on one lock and start
    with BEGIN IMMEDIATE. Every file runs in WAL mode with synchronous=FULL, so what was
    acknowledged survives a power cut.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        parsed = _parse_url(url)
        self.dialect = parsed.get_backend_name()
        self._write_lock: asyncio.Lock | None = None
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
            self._write_lock = asyncio.Lock()
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=10)
        try:
            self.engine: AsyncEngine = create_async_engine(parsed, **kwargs)
        except (ArgumentError, InvalidRequestError, ImportError) as exc:  # no URL in these
            raise ValueError(f"unusable database URL: {exc}; {_URL_SHAPES}") from exc
        if self.is_sqlite:
            _configure_sqlite(self.engine)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block exits, rolled back on error."""
        lock = self._write_lock or contextlib.nullcontext()
        async with lock, _translated(), self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with _translated(), self.engine.connect() as conn:
            # A plain BEGIN: readers must not take SQLite's write lock.
            await conn.execution_options(payrelay_read_only=True)
            yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()


def dialect_insert(db: Database | AsyncConnection, table: Table) -> PgInsert | SqliteInsert:
    """INSERT in the dialect at hand, which knows its ON CONFLICT clauses."""
    name = db.dialect if isinstance(db, Database) else db.dialect.name
    if name == "postgresql":
        return pg_insert(table)
    return sqlite_insert(table)


# A batch's ids go into one IN list; both drivers cap a statement's parameters (asyncpg at
# 32,767, SQLite at 32,766), and a consumer batch is far below this.
_IN_LIST_MAX = 1000


def chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    """`items` in IN lists small enough for any driver."""
    for start in range(0, len(items), _IN_LIST_MAX):
        yield items[start:start + _IN_LIST_MAX]


def insert_ignoring_conflicts(db: Database, table: Table) -> PgInsert | SqliteInsert:
    """INSERT … ON CONFLICT DO NOTHING, in the dialect at hand."""
    return dialect_insert(db, table).on_conflict_do_nothing()


# PostgreSQL's answers that mean "not now" rather than "not this": connection exceptions,
# too many connections, the server shutting down or starting up, and a database closed to
# new connections (ALTER DATABASE … ALLOW_CONNECTIONS false, or being dropped).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P", "55000")
# "Not this row": 22 data exception (value too long, NUL in text, bad encoding), 23 integrity
# constraint violation (a CHECK, a NOT NULL). SQLite's IntegrityError says the same.
_UNSTORABLE_SQLSTATES = ("22", "23")


@contextlib.asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """Services see StorageUnavailable, never a driver's exception."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        # The driver's first line says what is wrong ("database is locked", "connection
        # refused"); a URL's password is never part of it.
        detail = str(exc.orig).splitlines()[0][:200] if str(exc.orig) else ""
        raise StorageUnavailable(
            f"database unavailable: {type(exc.orig).__name__}: {detail}".rstrip(": ")
        ) from exc
    except DBAPIError as exc:
        _raise_if_refused(exc)
        if exc.connection_invalidated:
            raise StorageUnavailable("database connection lost") from exc
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        if sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            raise StorageUnavailable(f"database unavailable: SQLSTATE {sqlstate}") from exc
        if sqlstate.startswith(_UNSTORABLE_SQLSTATES) or isinstance(exc, IntegrityError):
            # The row's values are not repeated: they may be an attacker's, or a secret.
            raise UnstorableRecord(f"the database refused a value (SQLSTATE {sqlstate or '-'})"
                                   ) from exc
        raise
    except PoolTimeout as exc:  # every connection busy (a stalled server): try again later
        raise StorageUnavailable("database busy: no connection free in time") from exc
    except UnicodeError as exc:  # a lone surrogate: no driver can encode it
        raise UnstorableRecord("the database refused a value: text is not valid Unicode") from exc
    except (OSError, ConnectionError) as exc:
        raise StorageUnavailable(f"database unreachable: {exc.__class__.__name__}") from exc


# SQLSTATE classes that mean "not this": 28 invalid authorization, 3D no such database.
_REFUSED_SQLSTATES = ("28", "3D")


def _raise_if_refused(exc: DBAPIError) -> None:
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    if sqlstate.startswith(_REFUSED_SQLSTATES):
        # The server's first line names the database or the role, never the password.
        detail = str(exc.orig).splitlines()[0][:200]
        message = f"the database refuses payrelay: {detail} (SQLSTATE {sqlstate})"
        raise StorageRefused(message) from exc


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control so BEGIN IMMEDIATE below is what starts it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get("payrelay_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


_URL_SHAPES = "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DATABASE"


def _parse_url(url: str) -> URL:
    """The URL, or ValueError saying so without repeating it (it may hold a password)."""
    try:
        return make_url(url)
    except ArgumentError:
        raise ValueError(f"not a database URL; {_URL_SHAPES}") from None
