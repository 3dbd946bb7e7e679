"""Outbox, inbox, timeline and dead letters in memory: the same shape on both sides."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from payrelay.adapters.memory.store import MemoryDatabase, State
from payrelay.adapters.memory.work import WorkRow, claim, move_due, retried
from payrelay.domain.errors import UnstorableRecord
from payrelay.domain.events import Envelope
from payrelay.domain.work import OutboxStatus
from payrelay.ports import (
    Delivery,
    FailedTry,
    InboxEntry,
    OutboundMessage,
    SeenMessage,
    Subscription,
    TimelineEntry,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class OutboxRow(WorkRow):
    seq: int
    message_id: uuid.UUID
    exchange: str
    routing_key: str
    correlation_id: str
    body: bytes
    order_id: str | None
    payment_id: str | None
    created_at: datetime
    sent_at: datetime | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class InboxRow:
    message_id: uuid.UUID
    type: str
    payment_id: str | None
    received_at: datetime
    reply_id: uuid.UUID | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class TimelineRow:
    at: datetime
    step: str
    order_id: str | None
    payment_id: str | None
    detail: str | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeadLetterRow:
    id: int
    message_id: str | None
    exchange: str | None
    routing_key: str | None
    queue: str | None
    body: bytes
    reason: str
    error: str | None
    attempts: int
    dead_at: datetime


@dataclasses.dataclass
class MessagingState(State):
    """The tables both databases have; `next_id` numbers outbox and dead-letter rows."""

    outbox: dict[uuid.UUID, OutboxRow] = dataclasses.field(default_factory=dict)
    inbox: dict[uuid.UUID, InboxRow] = dataclasses.field(default_factory=dict)
    timeline: list[TimelineRow] = dataclasses.field(default_factory=list)
    dead_letters: dict[int, DeadLetterRow] = dataclasses.field(default_factory=dict)
    next_id: int = 1

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


class MemoryOutbox:
    def __init__(self, state: MessagingState, *, now: datetime) -> None:
        self._state, self._now = state, now

    async def add(self, envelope: Envelope, *, exchange: str) -> None:
        if envelope.message_id in self._state.outbox:  # the unique message_id column
            raise UnstorableRecord(f"message {envelope.message_id} is already in the outbox")
        self._state.outbox[envelope.message_id] = OutboxRow(
            seq=self._state.new_id(), message_id=envelope.message_id, exchange=exchange,
            routing_key=envelope.routing_key, correlation_id=envelope.correlation_id,
            body=envelope.to_json(), order_id=envelope.order_id,
            payment_id=envelope.payment_id, status=OutboxStatus.PENDING,
            created_at=self._now, next_attempt_at=self._now,
        )

    async def add_many(self, envelopes: Sequence[Envelope], *, exchange: str) -> None:
        for envelope in envelopes:
            await self.add(envelope, exchange=exchange)

    async def requeue_many(self, message_ids: Sequence[uuid.UUID]) -> None:
        for message_id in message_ids:
            await self.requeue(message_id)

    async def requeue(self, message_id: uuid.UUID) -> bool:
        row = self._state.outbox.get(message_id)
        if row is None:
            return False
        self._state.outbox[message_id] = dataclasses.replace(
            row, status=OutboxStatus.PENDING, next_attempt_at=self._now
        )
        return True


class MemoryInbox:
    def __init__(self, state: MessagingState) -> None:
        self._state = state

    async def seen(self, message_id: uuid.UUID) -> SeenMessage | None:
        row = self._state.inbox.get(message_id)
        return None if row is None else SeenMessage(row.reply_id)

    async def seen_many(
        self, message_ids: Sequence[uuid.UUID]
    ) -> Mapping[uuid.UUID, SeenMessage]:
        inbox = self._state.inbox
        return {m: SeenMessage(inbox[m].reply_id) for m in message_ids if m in inbox}

    async def redirect_replies(self, payment_id: str, reply_id: uuid.UUID) -> None:
        inbox = self._state.inbox
        for key, row in list(inbox.items()):
            if row.payment_id == payment_id and row.reply_id is not None:
                inbox[key] = dataclasses.replace(row, reply_id=reply_id)

    async def add(
        self, envelope: Envelope, *, received_at: datetime, reply_id: uuid.UUID | None
    ) -> None:
        if envelope.message_id in self._state.inbox:  # the primary key
            raise UnstorableRecord(f"message {envelope.message_id} is already in the inbox")
        self._state.inbox[envelope.message_id] = InboxRow(
            message_id=envelope.message_id, type=envelope.type.value,
            payment_id=envelope.payment_id, received_at=received_at, reply_id=reply_id,
        )

    async def add_many(self, entries: Sequence[InboxEntry], *, received_at: datetime) -> None:
        for entry in entries:
            await self.add(entry.envelope, received_at=received_at, reply_id=entry.reply_id)


class MemoryTimeline:
    def __init__(self, state: MessagingState) -> None:
        self._state = state

    async def record(
        self,
        step: str,
        *,
        at: datetime,
        order_id: str | None,
        payment_id: str | None,
        detail: str | None = None,
    ) -> None:
        self._state.timeline.append(
            TimelineRow(at=at, step=step, order_id=order_id, payment_id=payment_id,
                        detail=detail)
        )

    async def record_many(self, entries: Sequence[TimelineEntry]) -> None:
        for e in entries:
            await self.record(e.step, at=e.at, order_id=e.order_id, payment_id=e.payment_id,
                              detail=e.detail)


class MemoryDeadLetters:
    def __init__(self, state: MessagingState) -> None:
        self._state = state

    async def add(
        self,
        delivery: Delivery,
        *,
        subscription: Subscription,
        reason: str,
        error: str,
        at: datetime,
    ) -> None:
        row_id = self._state.new_id()
        self._state.dead_letters[row_id] = DeadLetterRow(
            id=row_id, message_id=delivery.message_id, exchange=subscription.exchange,
            routing_key=delivery.routing_key, queue=subscription.queue, body=delivery.body,
            reason=reason, error=error[:2000],
            attempts=int(delivery.headers.get("x-payrelay-attempts", "1")), dead_at=at,
        )


M = TypeVar("M", bound=MessagingState)


class MemoryOutboxRelayStore(Generic[M]):
    """The relay's view of one side's outbox; each call is its own transaction."""

    def __init__(self, db: MemoryDatabase[M]) -> None:
        self._db = db

    async def claim_due(
        self, *, limit: int, now: datetime, lease: timedelta
    ) -> list[OutboundMessage]:
        async with self._db.transaction() as state:
            rows = claim(state.outbox, waiting=OutboxStatus.PENDING, now=now, lease=lease,
                         limit=limit, order=lambda r: r.seq)
        return [_message(row) for row in rows]

    async def extend(self, work: Sequence[OutboundMessage], *, until: datetime) -> None:
        async with self._db.transaction() as state:
            move_due(state.outbox, [m.message_id for m in work],
                     waiting=OutboxStatus.PENDING, until=until)

    async def mark_sent(
        self, message_ids: Sequence[uuid.UUID], *, now: datetime,
        timeline: Sequence[TimelineEntry] = (),
    ) -> None:
        async with self._db.transaction() as state:
            await MemoryTimeline(state).record_many(timeline)
            for message_id in message_ids:
                row = state.outbox.get(message_id)
                if row is not None:
                    state.outbox[message_id] = dataclasses.replace(
                        row, status=OutboxStatus.SENT, sent_at=now
                    )

    async def record_failures(
        self, failed: Sequence[FailedTry[OutboundMessage]], *, now: datetime
    ) -> None:
        async with self._db.transaction() as state:
            for each in failed:
                row = state.outbox.get(each.work.message_id)
                if row is None or row.status != OutboxStatus.PENDING:
                    continue
                if each.decision.retry_at is not None:
                    state.outbox[row.message_id] = retried(row, each.decision, each.error)
                else:
                    _dead_letter(state, row, each, now)


def _dead_letter(
    state: MessagingState, row: OutboxRow, failed: FailedTry[OutboundMessage], now: datetime
) -> None:
    """Given up: the row is dead, and a dead letter keeps it for `payrelay dlq` to replay."""
    state.outbox[row.message_id] = dataclasses.replace(
        row, status=OutboxStatus.DEAD, attempts=row.attempts + 1,
        failures=row.failures + 1, last_error=failed.error[:500],
    )
    gave_up = failed.decision.gave_up
    reason = "consumer retries exhausted" if gave_up is None or gave_up.startswith(
        "failed:") else gave_up
    row_id = state.new_id()
    state.dead_letters[row_id] = DeadLetterRow(
        id=row_id, message_id=str(row.message_id), exchange=row.exchange,
        routing_key=row.routing_key, queue=None, body=row.body, reason=reason,
        error=failed.error[:2000], attempts=row.attempts + 1, dead_at=now,
    )


def _message(row: OutboxRow) -> OutboundMessage:
    """The row as the relay sees it: one count of failed tries, as the SQL outbox keeps
    (the relay only ever retries transport trouble, which spends nothing)."""
    return OutboundMessage(
        message_id=row.message_id, exchange=row.exchange, routing_key=row.routing_key,
        correlation_id=row.correlation_id, body=row.body,
        attempts=row.attempts, order_id=row.order_id,
        payment_id=row.payment_id, created_at=row.created_at,
    )
