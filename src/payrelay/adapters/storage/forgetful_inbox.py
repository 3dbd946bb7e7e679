"""TEST ONLY: a deliberately broken build, in which the consumers' inboxes remember nothing.

`payrelay chaos` must be shown able to fail. With `PAYRELAY_TEST_ONLY_FORGETFUL_INBOX=true`
bootstrap hands both consumers this unit of work: every transaction it begins is the real
one, except that its inbox has never seen a message and keeps none, so a redelivered
message is applied again as if new. The chaos checker must then report it
(tests/integration/test_chaos.py). Nothing else may use it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from payrelay.domain.events import Envelope
from payrelay.ports import Inbox, InboxEntry, SeenMessage

__all__ = ["ForgetfulInbox", "ForgetfulInboxUnitOfWork"]


class ForgetfulInbox:
    """An inbox with no memory: nothing was seen, nothing is kept."""

    async def seen(self, message_id: uuid.UUID) -> SeenMessage | None:
        return None

    async def seen_many(
        self, message_ids: Sequence[uuid.UUID]
    ) -> Mapping[uuid.UUID, SeenMessage]:
        return {}

    async def redirect_replies(self, payment_id: str, reply_id: uuid.UUID) -> None:
        return None

    async def add(
        self, envelope: Envelope, *, received_at: datetime, reply_id: uuid.UUID | None
    ) -> None:
        return None

    async def add_many(self, entries: Sequence[InboxEntry], *, received_at: datetime) -> None:
        return None


class _HasInbox(Protocol):
    inbox: Inbox


TxT = TypeVar("TxT", bound=_HasInbox)
TxT_co = TypeVar("TxT_co", bound=_HasInbox, covariant=True)


class _Begins(Protocol[TxT_co]):
    def begin(self) -> AbstractAsyncContextManager[TxT_co, bool | None]: ...


class ForgetfulInboxUnitOfWork(Generic[TxT]):
    """`uow`'s transactions, with a `ForgetfulInbox` in place of the real one."""

    def __init__(self, uow: _Begins[TxT]) -> None:
        self._uow = uow

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[TxT]:
        async with self._uow.begin() as tx:
            tx.inbox = ForgetfulInbox()
            yield tx
