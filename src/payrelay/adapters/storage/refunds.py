"""Refund intents: recorded before the gateway is called, unique per payment."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database, insert_ignoring_conflicts
from payrelay.adapters.storage.work_queue import SqlWorkQueue, WorkTable
from payrelay.domain.money import Money
from payrelay.domain.work import RefundStatus
from payrelay.ports import RefundRequest


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
                status=RefundStatus.HELD if hold else RefundStatus.REQUESTED,
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
            .values(
                status=RefundStatus.SUCCEEDED, gateway_refund_id=gateway_refund_id,
                updated_at=now,
            )
        )

    async def hold(self, refund: RefundRequest, *, error: str, now: datetime) -> None:
        r = t.refunds
        await self._conn.execute(
            update(r)
            .where(r.c.payment_id == refund.payment_id, r.c.status == RefundStatus.REQUESTED)
            .values(status=RefundStatus.HELD, last_error=error[:500], updated_at=now)
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


REFUND_WORK: WorkTable[RefundRequest] = WorkTable(
    table=t.refunds,
    key="payment_id",
    order="next_attempt_at",
    waiting=RefundStatus.REQUESTED,
    dead=RefundStatus.DEAD,
    work=_request,
    key_of=lambda r: r.payment_id,
    stamped_on_failure=("updated_at",),
)


class SqlRefundQueue(SqlWorkQueue[RefundRequest]):
    """Refunds waiting for the gateway."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, REFUND_WORK)
