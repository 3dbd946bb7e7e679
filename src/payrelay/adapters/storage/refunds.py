"""Refund intents: recorded before the gateway is called, unique per payment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database, insert_ignoring_conflicts
from payrelay.domain.money import Money
from payrelay.domain.work import RefundStatus
from payrelay.ports import FailedTry, RefundRequest

REQUESTED, SUCCEEDED, HELD, DEAD = (
    RefundStatus.REQUESTED, RefundStatus.SUCCEEDED, RefundStatus.HELD, RefundStatus.DEAD
)


class SqlRefunds:
    def __init__(self, conn: AsyncConnection, db: Database) -> None:
        self._conn, self._db = conn, db

    async def request(self, refund: RefundRequest, *, hold: bool, now: datetime) -> bool:
        result = await self._conn.execute(
            insert_ignoring_conflicts(self._db, t.refunds).values(
                payment_id=refund.payment_id,
                provider=refund.provider,
                order_id=refund.order_id,
                amount_minor=refund.amount.minor_units,
                currency=refund.amount.currency,
                reason=refund.reason,
                status=HELD if hold else REQUESTED,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        return bool(result.rowcount)

    async def mark_succeeded(
        self, refund: RefundRequest, *, gateway_refund_id: str | None, now: datetime
    ) -> None:
        r = t.refunds
        await self._conn.execute(
            update(r)
            .where(r.c.payment_id == refund.payment_id)
            .values(status=SUCCEEDED, gateway_refund_id=gateway_refund_id, updated_at=now)
        )

    async def hold(self, refund: RefundRequest, *, error: str, now: datetime) -> None:
        r = t.refunds
        await self._conn.execute(
            update(r)
            .where(r.c.payment_id == refund.payment_id, r.c.status == REQUESTED)
            .values(status=HELD, last_error=error[:500], updated_at=now)
        )


class SqlRefundQueue:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim_due(
        self, *, limit: int, now: datetime, lease: timedelta
    ) -> list[RefundRequest]:
        r = t.refunds
        due = (
            select(r.c.payment_id)
            .where(r.c.status == REQUESTED, r.c.next_attempt_at <= now)
            .order_by(r.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._db.transaction() as conn:
            rows = (
                await conn.execute(
                    update(r)
                    .where(r.c.payment_id.in_(due.scalar_subquery()))
                    .values(next_attempt_at=now + lease)
                    .returning(r)
                )
            ).all()
        return [_request(row) for row in rows]

    async def record_failures(
        self, failed: Sequence[FailedTry[RefundRequest]], *, now: datetime
    ) -> None:
        for each in failed:
            await self._record_failure(each, now=now)

    async def _record_failure(self, failed: FailedTry[RefundRequest], *, now: datetime) -> None:
        r, refund, decision = t.refunds, failed.work, failed.decision
        if decision.retry_at is None:
            values: dict[str, Any] = {
                "status": DEAD, "failures": r.c.failures + 1,
                "last_error": f"{decision.gave_up}; {failed.error}"[:2000],
            }
        else:
            values = {
                "next_attempt_at": decision.retry_at,
                "failures": r.c.failures + int(decision.spends_attempt),
                "last_error": failed.error[:500],
            }
        async with self._db.transaction() as conn:
            await conn.execute(
                update(r)
                .where(r.c.payment_id == refund.payment_id, r.c.status == REQUESTED)
                .values(attempts=r.c.attempts + 1, updated_at=now, **values)
            )

    async def extend(self, work: Sequence[RefundRequest], *, until: datetime) -> None:
        r = t.refunds
        async with self._db.transaction() as conn:
            await conn.execute(
                update(r)
                .where(r.c.payment_id.in_([w.payment_id for w in work]),
                       r.c.status == RefundStatus.REQUESTED)
                .values(next_attempt_at=until)
            )


def _request(row: Row[Any]) -> RefundRequest:
    return RefundRequest(
        payment_id=row.payment_id,
        provider=row.provider,
        order_id=row.order_id,
        amount=Money.from_minor(row.amount_minor, row.currency),
        reason=row.reason,
        attempts=row.attempts,
        failures=row.failures,
        created_at=row.created_at,
    )
