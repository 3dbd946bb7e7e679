"""An outbox's lag, read from its database when /metrics is scraped."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy import func, select

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.domain.work import OutboxStatus
from payrelay.ports import Clock
from payrelay.ports.metrics import OutboxLag, OutboxLagReader

__all__ = ["outbox_lag_reader"]


def outbox_lag_reader(db: Database, *, orders_side: bool, clock: Clock) -> OutboxLagReader:
    """Pending rows and the oldest one's age, in one indexed query (ix_outbox_due)."""
    table = t.orders_outbox if orders_side else t.payments_outbox
    query = select(func.count(), func.min(table.c.created_at)).where(
        table.c.status == OutboxStatus.PENDING
    )

    async def read() -> OutboxLag:
        async with db.read() as conn:
            rows, oldest = (await conn.execute(query)).one()
        if oldest is None:
            return OutboxLag(rows=int(rows), oldest_seconds=0.0)
        if oldest.tzinfo is None:  # min() keeps the column's type; this is belt and braces
            oldest = oldest.replace(tzinfo=UTC)
        return OutboxLag(rows=int(rows), oldest_seconds=(clock() - oldest).total_seconds())

    return read
