"""The payments database as the reconciler reads it: what may have fallen through."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database, insert_ignoring_conflicts
from payrelay.adapters.storage.messages import SqlTimeline
from payrelay.domain.events import EventType
from payrelay.domain.order import WAS_APPROVED
from payrelay.domain.payment import UNSETTLED, PaymentStatus
from payrelay.domain.work import OutboxStatus
from payrelay.ports import TimelineEntry


class SqlReconciliationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def unanswered_approvals(self, *, updated_before: datetime, limit: int) -> list[str]:
        p = t.payments
        query = (
            select(p.c.payment_id)
            .where(
                p.c.status == PaymentStatus.APPROVED.value,
                p.c.order_outcome.is_(None),
                p.c.order_id.is_not(None),
                p.c.updated_at < updated_before,
            )
            .order_by(p.c.updated_at)
            .limit(limit)
        )
        async with self._db.read() as conn:
            return list((await conn.execute(query)).scalars())

    async def resend_approvals(
        self, payment_ids: Sequence[str], *, now: datetime,
        timeline: Mapping[str, TimelineEntry] | None = None,
    ) -> list[str]:
        """Publish the approval again with its original message id (the inbox knows it).

        Lock order, which every transaction that writes payments rows keeps, so that none
        waits for another in a cycle: payments rows first, in ascending payment_id; then
        outbox rows, in ascending seq. The reconciler goes further and takes its rows with
        SKIP LOCKED, so it never waits at all: a payment a consumer or processor holds (its
        answer is most likely being recorded right now) is left for a later run.
        """
        if not payment_ids:
            return []
        o, p = t.payments_outbox, t.payments
        async with self._db.transaction() as conn:
            locked = await _lock_unanswered(conn, payment_ids)  # payments rows: first
            if not locked:
                return []
            approvals = await _lock_sent_approvals(conn, locked)  # outbox rows: second
            if approvals:
                await conn.execute(
                    update(o)
                    .where(o.c.seq.in_([seq for seq, _ in approvals]))
                    .values(status=OutboxStatus.PENDING, next_attempt_at=now)
                )
            # Restart the SLA clock, so one stuck payment is re-sent once per SLA, not per
            # run. These rows are locked by this transaction already: no wait, no cycle. (A
            # busy outbox row, skipped above, is re-sent when this SLA runs out.)
            await conn.execute(
                update(p).where(p.c.payment_id.in_(locked)).values(updated_at=now)
            )
            resent = sorted({payment_id for _, payment_id in approvals})
            await SqlTimeline(conn, t.payments_timeline).record_many(
                [timeline[r] for r in resent if r in timeline] if timeline else [])
        return resent

    async def checkouts_to_verify(
        self, *, created_before: datetime, created_after: datetime, limit: int
    ) -> list[str]:
        """Checkouts to search in the gateway: each one once when it is old enough (a second,
        unnotified payment would otherwise go unseen), then again every window while no
        approved payment is known for it."""
        c, p = t.checkouts, t.payments
        approved = exists().where(
            and_(p.c.order_id == c.c.order_id, p.c.status.in_([s.value for s in WAS_APPROVED]))
        )
        due = (
            select(c.c.order_id)
            .where(
                c.c.created_at < created_before,
                c.c.created_at > created_after,
                or_(
                    c.c.reconciled_at.is_(None),
                    and_(~approved, c.c.reconciled_at < created_before),
                ),
            )
            .order_by(c.c.reconciled_at.is_not(None), c.c.reconciled_at)
            .limit(limit)
        )
        async with self._db.read() as conn:
            return list((await conn.execute(due)).scalars())

    async def mark_verified(self, order_id: str, *, now: datetime) -> None:
        """Called only after the gateway answered: a failed search is tried again."""
        c = t.checkouts
        async with self._db.transaction() as conn:
            await conn.execute(update(c).where(c.c.order_id == order_id).values(reconciled_at=now))

    async def known_updates(self, payment_ids: Sequence[str]) -> dict[str, datetime]:
        if not payment_ids:
            return {}
        p = t.payments
        query = select(p.c.payment_id, p.c.date_last_updated).where(
            p.c.payment_id.in_(list(payment_ids))
        )
        async with self._db.read() as conn:
            return {pid: when for pid, when in (await conn.execute(query)).all()}

    async def unsettled(self, *, updated_before: datetime, limit: int) -> list[str]:
        p = t.payments
        query = (
            select(p.c.payment_id)
            .where(p.c.status.in_([s.value for s in UNSETTLED]), p.c.updated_at < updated_before)
            .order_by(p.c.updated_at)
            .limit(limit)
        )
        async with self._db.read() as conn:
            return list((await conn.execute(query)).scalars())

    async def sweep_watermark(self, provider: str) -> datetime | None:
        w = t.sweep_watermarks
        query = select(w.c.watermark).where(w.c.provider == provider)
        async with self._db.read() as conn:
            watermark: datetime | None = (await conn.execute(query)).scalar_one_or_none()
        return watermark

    async def advance_sweep_watermark(
        self, provider: str, watermark: datetime, *, now: datetime
    ) -> None:
        """Never moves it back: a slower concurrent run's earlier mark changes nothing."""
        w = t.sweep_watermarks
        async with self._db.transaction() as conn:
            await conn.execute(
                insert_ignoring_conflicts(self._db, w).values(
                    provider=provider, watermark=watermark, updated_at=now
                )
            )
            await conn.execute(
                update(w)
                .where(w.c.provider == provider, w.c.watermark < watermark)
                .values(watermark=watermark, updated_at=now)
            )

    async def save_report(
        self, report: dict[str, Any], *, started_at: datetime, finished_at: datetime
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                insert(t.reconciliation_runs).values(
                    started_at=started_at, finished_at=finished_at, report=json.dumps(report)
                )
            )


async def _lock_unanswered(conn: AsyncConnection, payment_ids: Sequence[str]) -> list[str]:
    """Lock, in ascending payment_id, those still approved and unanswered; skip busy ones."""
    p = t.payments
    query = (
        select(p.c.payment_id)
        .where(
            p.c.payment_id.in_(list(payment_ids)),
            # Listed before this transaction: the answer may have come since.
            p.c.status == PaymentStatus.APPROVED.value,
            p.c.order_outcome.is_(None),
        )
        .order_by(p.c.payment_id)
        .with_for_update(skip_locked=True)
    )
    return list((await conn.execute(query)).scalars())


async def _lock_sent_approvals(
    conn: AsyncConnection, payment_ids: Sequence[str]
) -> list[tuple[int, str]]:
    """Lock, in ascending seq, the sent approvals of these payments; skip busy ones."""
    o = t.payments_outbox
    query = (
        select(o.c.seq, o.c.payment_id)
        .where(
            o.c.payment_id.in_(list(payment_ids)),
            o.c.routing_key == EventType.PAYMENT_APPROVED.value,
            # A dead approval waits for a person's replay, not for the next SLA.
            o.c.status == OutboxStatus.SENT,
        )
        .order_by(o.c.seq)
        .with_for_update(skip_locked=True)
    )
    return [(seq, payment_id) for seq, payment_id in (await conn.execute(query)).all()]
