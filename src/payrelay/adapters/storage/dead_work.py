"""Notifications and refunds that `decide_retry` gave up on, shown as dead letters.

They stay in their own tables with status `dead` and the reason in `last_error`: a replay
makes one due again from a clean count, so the same path that failed runs again once a
person has fixed the cause (credentials, a payment the gateway finally shows).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.engine import Row

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.payments import NOTIFICATION_WORK
from payrelay.adapters.storage.refunds import REFUND_WORK
from payrelay.adapters.storage.work_queue import WorkTable
from payrelay.domain.errors import Conflict, NotFound
from payrelay.domain.work import NotificationStatus, RefundStatus
from payrelay.ports import DeadLetter

NOTIFICATION, REFUND = "notification", "refund"
_WORK: dict[str, WorkTable[Any]] = {NOTIFICATION: NOTIFICATION_WORK, REFUND: REFUND_WORK}


class SqlDeadWork:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def recent(self, *, limit: int) -> list[DeadLetter]:
        n, r = t.notifications, t.refunds
        async with self._db.read() as conn:
            notes = (await conn.execute(
                select(n).where(n.c.status == NotificationStatus.DEAD)
                .order_by(n.c.id.desc()).limit(limit)
            )).all()
            refunds = (await conn.execute(
                select(r).where(r.c.status == RefundStatus.DEAD)
                .order_by(r.c.updated_at.desc()).limit(limit)
            )).all()
        return [_notification(row) for row in notes] + [_refund(row) for row in refunds]

    async def get(self, kind: str, key: str) -> DeadLetter | None:
        work = _WORK[kind]
        async with self._db.read() as conn:
            row = (await conn.execute(
                select(work.table).where(_is(work, key), work.table.c.status == work.dead)
            )).first()
        if row is None:
            return None
        return _notification(row) if kind == NOTIFICATION else _refund(row)

    async def replay(self, kind: str, key: str, *, now: datetime) -> None:
        """Due again now, from a clean count; NotFound unless it is dead."""
        work = _WORK[kind]
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(work.table).where(_is(work, key), work.table.c.status == work.dead)
                .values(status=work.waiting, failures=0, attempts=0, next_attempt_at=now)
            )
        if not result.rowcount:
            raise NotFound(f"no dead {kind} {key}")

    async def purge(self, kind: str, key: str) -> bool:
        """A dead notification is set aside as ignored; a refund is never purged."""
        if kind == REFUND:
            raise Conflict(f"refund-{key} is money owed: replay it, or settle it at the gateway")
        n = t.notifications
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(n)
                .where(n.c.id == int(key), n.c.status == NotificationStatus.DEAD)
                .values(status=NotificationStatus.IGNORED)
            )
        return bool(result.rowcount)


def _is(work: WorkTable[Any], key: str) -> ColumnElement[bool]:
    """The row `key` names (a notification's key is its number)."""
    column = work.column(work.key)
    return column == (int(key) if work is NOTIFICATION_WORK else key)


def _notification(row: Row[Any]) -> DeadLetter:
    dead_at: datetime = row.processed_at or row.received_at
    return DeadLetter(
        id=f"{NOTIFICATION}-{row.id}", message_id=None, exchange=None,
        routing_key=f"{row.topic} {row.resource_id}", queue=None,
        reason=_reason(row.last_error), error=row.last_error, attempts=row.attempts,
        dead_at=dead_at, body=b"", payment_id=row.resource_id,
    )


def _refund(row: Row[Any]) -> DeadLetter:
    dead_at: datetime = row.updated_at
    return DeadLetter(
        id=f"{REFUND}-{row.payment_id}", message_id=None, exchange=None,
        routing_key=f"refund {row.reason}", queue=None,
        reason=_reason(row.last_error), error=row.last_error, attempts=row.attempts,
        dead_at=dead_at, body=b"", order_id=row.order_id, payment_id=row.payment_id,
    )


def _reason(last_error: str | None) -> str:
    """`decide_retry`'s reason, stored before the first "; " of last_error."""
    return (last_error or "dead").partition("; ")[0]
