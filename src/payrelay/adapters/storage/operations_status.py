"""`payrelay status`: the pipeline's backlog at each stage, read from both databases.

Every figure is one aggregate query over an indexed status column, so asking costs the
same whatever the tables hold. Ages are measured against the caller's clock.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.domain.payment import PaymentStatus
from payrelay.domain.work import NotificationStatus, OutboxStatus, RefundStatus
from payrelay.ports import Backlog, PipelineStatus, WorkerBeat

FINDINGS = ("resent_approvals", "lost_payments_found", "unsettled_refetched")
"""What a reconciler run found and put back on the normal path (its report's keys)."""


async def pipeline_status(
    payments_db: Database, orders_db: Database | None, *, now: datetime,
    down_after: timedelta,
) -> PipelineStatus:
    """`orders_db` None: a deployment without an orders database; its figures stay zero."""
    n, r = t.notifications, t.refunds
    async with payments_db.read() as conn:
        waiting = n.c.status == NotificationStatus.RECEIVED
        notifications = await _backlog(conn, n, n.c.received_at, waiting, now)
        dead_notifications = await _count(conn, n, n.c.status == NotificationStatus.DEAD)
        retrying_notifications = await _count(conn, n, waiting & (n.c.attempts > 0))
        last_error = await _last_notification_error(conn)
        payments_outbox = await _outbox_backlog(conn, t.payments_outbox, now)
        retrying = await _outbox_retrying(conn, t.payments_outbox) + retrying_notifications
        retrying += await _count(conn, r, (r.c.status == RefundStatus.REQUESTED)
                                 & (r.c.attempts > 0))
        dead = await _dead(conn, t.payments_outbox, t.payments_dead_letters)
        dead += await _count(conn, r, r.c.status == RefundStatus.DEAD)
        unapplied = await _unapplied_approvals(conn, now)
        last_run, findings = await _last_reconciliation(conn)
        refunds = await _refund_counts(conn)
        beats = await _beats(conn, t.payments_heartbeats)
    orders_outbox = Backlog(0, None)
    if orders_db is not None:
        async with orders_db.read() as conn:
            orders_outbox = await _outbox_backlog(conn, t.orders_outbox, now)
            retrying += await _outbox_retrying(conn, t.orders_outbox)
            dead += await _dead(conn, t.orders_outbox, t.orders_dead_letters)
            beats += await _beats(conn, t.orders_heartbeats)
    return PipelineStatus(
        notifications_waiting=notifications, notifications_dead=dead_notifications,
        payments_outbox=payments_outbox, orders_outbox=orders_outbox, retrying=retrying,
        dead_letters=dead, unapplied_approvals=unapplied, reconciler_last_run_at=last_run,
        reconciler_findings=findings,
        refunds_pending=refunds.get(RefundStatus.REQUESTED, 0),
        refunds_held=refunds.get(RefundStatus.HELD, 0),
        workers=_workers(beats, now=now, down_after=down_after),
        notifications_retrying=retrying_notifications, last_notification_error=last_error,
        orders_side=orders_db is not None,
    )


async def _count(conn: AsyncConnection, table: Table, where: ColumnElement[bool]) -> int:
    query = select(func.count()).select_from(table).where(where)
    return int((await conn.execute(query)).scalar_one())


async def _backlog(
    conn: AsyncConnection, table: Table, since: Any, where: ColumnElement[bool],
    now: datetime,
) -> Backlog:
    query = select(func.count(), func.min(since)).select_from(table).where(where)
    count, oldest = (await conn.execute(query)).one()
    age = None if oldest is None else max(0.0, (now - oldest).total_seconds())
    return Backlog(int(count), age)


async def _outbox_backlog(conn: AsyncConnection, outbox: Table, now: datetime) -> Backlog:
    return await _backlog(conn, outbox, outbox.c.created_at,
                          outbox.c.status == OutboxStatus.PENDING, now)


async def _outbox_retrying(conn: AsyncConnection, outbox: Table) -> int:
    return await _count(conn, outbox,
                        (outbox.c.status == OutboxStatus.PENDING) & (outbox.c.attempts > 0))


async def _dead(conn: AsyncConnection, outbox: Table, dead_letters: Table) -> int:
    letters = int((await conn.execute(
        select(func.count()).select_from(dead_letters))).scalar_one())
    return letters + await _count(conn, outbox, outbox.c.status == OutboxStatus.DEAD)


async def _last_notification_error(conn: AsyncConnection) -> str | None:
    n = t.notifications
    query = (select(n.c.last_error)
             .where(n.c.status.in_([NotificationStatus.RECEIVED, NotificationStatus.DEAD]),
                    n.c.last_error.is_not(None))
             .order_by(n.c.id.desc()).limit(1))
    error = (await conn.execute(query)).scalar_one_or_none()
    return None if error is None else str(error)


async def _unapplied_approvals(conn: AsyncConnection, now: datetime) -> Backlog:
    """Approved at the gateway, with an order to tell, and no answer from it yet."""
    p = t.payments
    where = ((p.c.status == PaymentStatus.APPROVED) & p.c.order_id.is_not(None)
             & p.c.order_outcome.is_(None))
    return await _backlog(conn, p, p.c.updated_at, where, now)


async def _last_reconciliation(conn: AsyncConnection) -> tuple[datetime | None, int]:
    runs = t.reconciliation_runs
    query = select(runs.c.finished_at, runs.c.report).order_by(runs.c.id.desc()).limit(1)
    row = (await conn.execute(query)).first()
    if row is None:
        return None, 0
    report = json.loads(row.report)
    return row.finished_at, sum(len(report.get(key) or []) for key in FINDINGS)


async def _refund_counts(conn: AsyncConnection) -> dict[RefundStatus, int]:
    r = t.refunds
    query = select(r.c.status, func.count()).group_by(r.c.status)
    return {RefundStatus(s): int(c) for s, c in (await conn.execute(query)).all()}


async def _beats(conn: AsyncConnection, table: Table) -> list[tuple[str, str, datetime]]:
    query = select(table.c.name, table.c.roles, table.c.beat_at)
    return [(row.name, row.roles, row.beat_at) for row in (await conn.execute(query)).all()]


def _workers(
    beats: list[tuple[str, str, datetime]], *, now: datetime, down_after: timedelta
) -> tuple[WorkerBeat, ...]:
    """One per process (its newest beat across databases), by name."""
    newest: dict[str, tuple[str, datetime]] = {}
    for name, roles, at in beats:
        if name not in newest or at > newest[name][1]:
            newest[name] = (roles, at)
    return tuple(
        WorkerBeat(name=name, roles=tuple(r for r in roles.split(",") if r),
                   last_beat_at=at, up=now - at <= down_after)
        for name, (roles, at) in sorted(newest.items())
    )
