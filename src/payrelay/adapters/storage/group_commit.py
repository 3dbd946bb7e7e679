"""Group commit: many concurrent writers share one transaction and one fsync.

A webhook must be durable before it is answered, and SQLite with synchronous=FULL manages
about 2k commits/s. Requests that arrive while a commit is in flight are written together
in the next one, so throughput grows with load while a lone request still commits at once.

Sharing a transaction must not mean sharing a fate: a batch that fails for any reason but
an unavailable database is written again one item per transaction, so only the item at
fault fails (callers validate first; this is the net under that).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from payrelay.adapters.storage.database import Database
from payrelay.domain.errors import StorageUnavailable

T = TypeVar("T")
R = TypeVar("R")

WriteBatch = Callable[[AsyncConnection, Sequence[T]], Awaitable[Sequence[R]]]


class GroupCommitter(Generic[T, R]):
    def __init__(self, db: Database, write: WriteBatch[T, R], *, max_batch: int = 500) -> None:
        self._db = db
        self._write = write
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Return once the transaction holding `item` has committed (or raise its error)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="group-commit")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            future.set_exception(StorageUnavailable("shutting down before commit"))

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            async with self._db.transaction() as conn:
                results = await self._write(conn, [item for item, _ in batch])
        except asyncio.CancelledError:
            _fail(batch, StorageUnavailable("shutting down before commit"))
            raise
        except StorageUnavailable as exc:  # every waiter learns the commit failed; none is lost
            _fail(batch, exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch, exc)
                return
            # One bad item (a value the database refuses) fails the whole transaction:
            # try each alone, so its neighbours commit and only it gets the error.
            try:
                for entry in batch:
                    await self._commit([entry])
            except asyncio.CancelledError:
                _fail(batch, StorageUnavailable("shutting down before commit"))
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _fail(batch: list[tuple[T, asyncio.Future[R]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
