"""One in-memory database: transactions that work on a copy and commit by swapping it in.

A service's "state change and event commit together" has to be as true here as in SQL, or
tests over the fakes prove nothing. So `transaction()` hands out a draft: every container
of the state copied (shallowly: rows are frozen dataclasses, replaced rather than changed),
and the draft becomes the state only when the block exits cleanly. An exception anywhere
in the block, an injected fault included, leaves the state exactly as it was.

Writers queue on one lock, as SQLite's single writer does: two transactions never work on
drafts of the same state at once, so a commit can never lose another's writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
from collections.abc import AsyncIterator
from typing import Generic, Self, TypeVar

from payrelay.domain.errors import StorageUnavailable


@dataclasses.dataclass
class State:
    """A database's tables as plain containers; subclasses add the tables."""

    def draft(self) -> Self:
        """A copy whose containers can change without touching this state."""
        return dataclasses.replace(
            self,
            **{f.name: copy.copy(getattr(self, f.name)) for f in dataclasses.fields(self)},
        )


S = TypeVar("S", bound=State)


class MemoryDatabase(Generic[S]):
    """The state of one database, and the one way to change it: `transaction()`.

    `available = False` makes every transaction raise StorageUnavailable, as a database
    that is down would, so tests can drive the outage paths without a real server.
    """

    def __init__(self, state: S) -> None:
        self.state = state
        self.available = True
        self.commits = 0
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[object] | None = None

    def committed(self) -> S:
        """The state as last committed, for a read outside any transaction."""
        self._check_available()
        return self.state

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[S]:
        """A draft of the state; committed when the block exits, discarded on error."""
        if self._holder is not None and self._holder is asyncio.current_task():
            # SQLite's write lock would hang here for ever; saying so is kinder.
            raise RuntimeError("a transaction was begun inside another on the same database")
        async with self._lock:
            self._check_available()
            self._holder = asyncio.current_task()
            try:
                draft = self.state.draft()
                yield draft
                # Only reached on a clean exit: an exception raised in the block comes out
                # of the `yield` above, and the draft is simply dropped.
                self.state = draft
                self.commits += 1
            finally:
                self._holder = None

    def _check_available(self) -> None:
        if not self.available:
            raise StorageUnavailable("database unavailable: memory database switched off")
