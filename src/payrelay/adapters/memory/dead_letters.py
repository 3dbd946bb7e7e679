"""Dead letters of both memory databases as one box: list, show, replay, purge.

The ids and rules are the SQL box's: `payments-<n>` and `orders-<n>` are dead messages,
replayed into their outbox under their own message id (the consumer's inbox makes a second
application impossible); `notification-<id>` and `refund-<payment id>` are dead work, made
due again from a clean count. A refund is money owed and is never purged.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from payrelay.adapters.memory.messaging import DeadLetterRow, MessagingState, OutboxRow
from payrelay.adapters.memory.orders import OrdersDatabase
from payrelay.adapters.memory.payments import (
    NotificationRow,
    PaymentsDatabase,
    PaymentsState,
    RefundRow,
)
from payrelay.adapters.memory.store import MemoryDatabase
from payrelay.adapters.memory.work import WorkRow
from payrelay.domain.errors import Conflict, NotFound
from payrelay.domain.work import NotificationStatus, OutboxStatus, RefundStatus
from payrelay.ports import Clock, DeadLetter

NOTIFICATION, REFUND = "notification", "refund"


class MemoryDeadLetterBox:
    def __init__(self, *, payments: PaymentsDatabase, orders: OrdersDatabase, clock: Clock
                 ) -> None:
        self._payments = payments
        self._sides: dict[str, MemoryDatabase[Any]] = {"payments": payments, "orders": orders}
        self._clock = clock

    async def recent(self, *, limit: int = 100) -> list[DeadLetter]:
        state = self._payments.committed()
        found = [_notification(r) for r in state.notifications.values()
                 if r.status == NotificationStatus.DEAD]
        found += [_refund(r) for r in state.refunds.values() if r.status == RefundStatus.DEAD]
        for side, db in self._sides.items():
            found += [_letter(side, row) for row in db.committed().dead_letters.values()]
        return sorted(found, key=lambda d: d.dead_at, reverse=True)[:limit]

    async def get(self, dead_letter_id: str) -> DeadLetter | None:
        found = [d for d in await self.recent(limit=10**9) if d.id == dead_letter_id]
        return found[0] if found else None

    async def replay(self, dead_letter_ids: Sequence[str] | None) -> list[str]:
        ids = [d.id for d in await self.recent(limit=10_000)] if dead_letter_ids is None \
            else list(dead_letter_ids)
        for dead_letter_id in ids:
            await self._replay_one(dead_letter_id)
        return ids

    async def purge(self, dead_letter_ids: Sequence[str]) -> list[str]:
        purged = []
        for dead_letter_id in dead_letter_ids:
            kind, _, key = dead_letter_id.partition("-")
            if kind == REFUND:
                raise Conflict(f"refund-{key} is money owed: replay it, or settle it at the "
                               "gateway")
            async with self._db(kind).transaction() as state:
                if _purge(state, kind, key):
                    purged.append(dead_letter_id)
        return purged

    def _db(self, kind: str) -> MemoryDatabase[Any]:
        if kind in (NOTIFICATION, REFUND):
            return self._payments
        if kind not in self._sides:
            raise NotFound(f"no dead letter {kind!r} (ids look like payments-12)")
        return self._sides[kind]

    async def _replay_one(self, dead_letter_id: str) -> None:
        kind, _, key = dead_letter_id.partition("-")
        now = self._clock()
        if kind in (NOTIFICATION, REFUND):
            async with self._payments.transaction() as payments:
                _replay_work(payments, kind, key, now)
            return
        async with self._db(kind).transaction() as state:
            _replay_message(state, dead_letter_id, key, now)


def _replay_work(state: PaymentsState, kind: str, key: str, now: datetime) -> None:
    """Due again now, from a clean count, down the path that failed; NotFound unless dead."""
    if kind == NOTIFICATION:
        note = state.notifications.get(int(key)) if key.isdigit() else None
        if note is None or note.status != NotificationStatus.DEAD:
            raise NotFound(f"no dead {kind} {key}")
        state.notifications[note.id] = _again(note, NotificationStatus.RECEIVED, now)
        return
    refund = state.refunds.get(key)
    if refund is None or refund.status != RefundStatus.DEAD:
        raise NotFound(f"no dead {kind} {key}")
    state.refunds[key] = _again(refund, RefundStatus.REQUESTED, now)


W = TypeVar("W", bound=WorkRow)


def _again(row: W, status: str, now: datetime) -> W:
    return dataclasses.replace(row, status=status, attempts=0, failures=0, next_attempt_at=now)


def _replay_message(
    state: MessagingState, dead_letter_id: str, key: str, now: datetime
) -> None:
    """Back into the outbox under its own id, from a clean count; the dead letter goes."""
    row = state.dead_letters.pop(int(key), None) if key.isdigit() else None
    if row is None:
        raise NotFound(f"no dead letter {dead_letter_id}")
    if not row.exchange or not row.routing_key or not row.message_id:
        raise Conflict(f"dead letter {dead_letter_id} has no address to replay to")
    message_id = uuid.UUID(row.message_id)
    existing = state.outbox.get(message_id)
    if existing is not None:
        state.outbox[message_id] = _again(existing, OutboxStatus.PENDING, now)
        return
    state.outbox[message_id] = OutboxRow(
        seq=state.new_id(), message_id=message_id, exchange=row.exchange,
        routing_key=row.routing_key, correlation_id=f"replay:{row.message_id}",
        body=row.body, order_id=None, payment_id=None, created_at=now,
        status=OutboxStatus.PENDING, next_attempt_at=now,
    )


def _purge(state: Any, kind: str, key: str) -> bool:
    """A dead notification is set aside as ignored; a dead message is deleted."""
    if kind == NOTIFICATION:
        row = state.notifications.get(int(key)) if key.isdigit() else None
        if row is None or row.status != NotificationStatus.DEAD:
            return False
        state.notifications[row.id] = dataclasses.replace(
            row, status=NotificationStatus.IGNORED
        )
        return True
    return state.dead_letters.pop(int(key), None) is not None if key.isdigit() else False


def _letter(side: str, row: DeadLetterRow) -> DeadLetter:
    return DeadLetter(
        id=f"{side}-{row.id}", message_id=row.message_id, exchange=row.exchange,
        routing_key=row.routing_key, queue=row.queue, reason=row.reason, error=row.error,
        attempts=row.attempts, dead_at=row.dead_at, body=row.body,
    )


def _notification(row: NotificationRow) -> DeadLetter:
    n = row.record
    return DeadLetter(
        id=f"{NOTIFICATION}-{row.id}", message_id=None, exchange=None,
        routing_key=f"{n.topic} {n.resource_id}", queue=None,
        reason=_reason(row.last_error), error=row.last_error, attempts=row.attempts,
        dead_at=row.processed_at or n.received_at, body=b"", payment_id=n.resource_id,
    )


def _refund(row: RefundRow) -> DeadLetter:
    r = row.request
    return DeadLetter(
        id=f"{REFUND}-{r.payment_id}", message_id=None, exchange=None,
        routing_key=f"refund {r.reason}", queue=None, reason=_reason(row.last_error),
        error=row.last_error, attempts=row.attempts, dead_at=row.updated_at, body=b"",
        order_id=r.order_id, payment_id=r.payment_id,
    )


def _reason(last_error: str | None) -> str:
    """`decide_retry`'s reason, stored before the first "; " of last_error."""
    return (last_error or "dead").partition("; ")[0]
