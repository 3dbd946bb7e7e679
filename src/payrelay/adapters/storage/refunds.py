"""Refund intents: recorded before the gateway is called, unique per payment."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database, insert_ignoring_conflicts
from payrelay.domain.money import Money
from payrelay.ports import FailedTry, RefundRequest

REQUESTED, SUCCEEDED, HELD, DEAD = "requested", "succeeded", "held", "dead"


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

    async def mark_succeeded(
        self, refund: RefundRequest, *, gateway_refund_id: str | None, now: datetime
    ) -> None:
        r = t.refunds
        async with self._db.transaction() as conn:
            await conn.execute(
                update(r)
                .where(r.c.payment_id == refund.payment_id)
                .values(status=SUCCEEDED, gateway_refund_id=gateway_refund_id, updated_at=now)
            )
            # The payment changed at the gateway: fetch it again, as if notified, so its
            # status here follows even if the gateway's own notification is lost.
            await conn.execute(
                insert_ignoring_conflicts(self._db, t.notifications).values(
                    dedupe_key=f"{refund.provider}:payment:{refund.payment_id}:refunded",
                    provider=refund.provider, topic="payment", action="refunder",
                    resource_id=refund.payment_id, status="received", attempts=0,
                    received_at=now, next_attempt_at=now,
                )
            )
            await conn.execute(
                t.payments_timeline.insert().values(
                    at=now, order_id=refund.order_id, payment_id=refund.payment_id,
                    step="refund.succeeded", detail=f"{refund.amount} ({refund.reason})",
                )
            )

    async def record_failure(self, failed: FailedTry[RefundRequest], *, now: datetime) -> None:
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

    async def hold(self, refund: RefundRequest, *, error: str, now: datetime) -> None:
        r = t.refunds
        async with self._db.transaction() as conn:
            await conn.execute(
                update(r)
                .where(r.c.payment_id == refund.payment_id, r.c.status == REQUESTED)
                .values(status=HELD, last_error=error[:500], updated_at=now)
            )
            await conn.execute(
                t.payments_timeline.insert().values(
                    at=now, order_id=refund.order_id, payment_id=refund.payment_id,
                    step="refund.held", detail=error[:200],
                )
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
