"""The storage both databases share: outbox, inbox, timeline and dead letters.

Each is bound to one open transaction, so a state change and the messages it causes
commit together by construction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from payrelay.domain.events import Envelope
from payrelay.ports.transport import Delivery, Subscription


class Outbox(Protocol):
    async def add(self, envelope: Envelope, *, exchange: str) -> None: ...

    async def add_many(self, envelopes: Sequence[Envelope], *, exchange: str) -> None:
        """What `add` does, for a whole batch in one statement."""
        ...

    async def requeue(self, message_id: uuid.UUID) -> bool:
        """Send an already-written message again (same id), e.g. a repeated outcome."""
        ...

    async def requeue_many(self, message_ids: Sequence[uuid.UUID]) -> None: ...


@dataclass(frozen=True, slots=True)
class SeenMessage:
    """An inbox entry: the message was applied; `reply_id` is the outcome sent back, if any."""

    reply_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """A message applied in this transaction, and the outcome it was answered with."""

    envelope: Envelope
    reply_id: uuid.UUID | None


class Inbox(Protocol):
    async def seen(self, message_id: uuid.UUID) -> SeenMessage | None: ...

    async def seen_many(
        self, message_ids: Sequence[uuid.UUID]
    ) -> Mapping[uuid.UUID, SeenMessage]:
        """The inbox entries of those of `message_ids` already applied, in one query."""
        ...

    async def redirect_replies(self, payment_id: str, reply_id: uuid.UUID) -> None:
        """A payment's outcome changed: redeliveries of its events repeat the new answer."""
        ...

    async def add(
        self, envelope: Envelope, *, received_at: datetime, reply_id: uuid.UUID | None
    ) -> None: ...

    async def add_many(self, entries: Sequence[InboxEntry], *, received_at: datetime) -> None:
        ...


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One step in an order's or a payment's life, as `payrelay trace` shows it."""

    step: str
    at: datetime
    order_id: str | None
    payment_id: str | None
    detail: str | None = None


class Timeline(Protocol):
    async def record(
        self,
        step: str,
        *,
        at: datetime,
        order_id: str | None,
        payment_id: str | None,
        detail: str | None = None,
    ) -> None: ...

    async def record_many(self, entries: Sequence[TimelineEntry]) -> None: ...


class DeadLetters(Protocol):
    async def add(
        self,
        delivery: Delivery,
        *,
        subscription: Subscription,
        reason: str,
        error: str,
        at: datetime,
    ) -> None: ...


class MessagingTx(Protocol):
    """What one transaction on either database offers every consumer and relay."""

    @property
    def outbox(self) -> Outbox: ...
    @property
    def inbox(self) -> Inbox: ...
    @property
    def timeline(self) -> Timeline: ...
    @property
    def dead_letters(self) -> DeadLetters: ...


class MessagingUnitOfWork(Protocol):
    def begin(self) -> AbstractAsyncContextManager[MessagingTx, bool | None]: ...
