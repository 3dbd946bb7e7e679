"""The one leased work queue, on SQLite and PostgreSQL: claims, heartbeats, retries, dead."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.migrations import Schema, upgrade
from payrelay.adapters.storage.payments import (
    SqlNotificationLog,
    SqlNotificationQueue,
    SqlPaymentsUnitOfWork,
)
from payrelay.domain.events import Envelope, EventType
from payrelay.domain.money import Money
from payrelay.domain.retry import RetryDecision
from payrelay.domain.work import NotificationStatus, OutboxStatus
from payrelay.ports import FailedTry, NotificationRecord
from tests.support import fresh_postgres_databases

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=3)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'payments.db'}"
        else:
            (url,) = await stack.enter_async_context(fresh_postgres_databases(1))
        database = Database(url)
        stack.push_async_callback(database.dispose)
        await upgrade(database, Schema.PAYMENTS)
        yield database


async def record(db: Database, *payment_ids: str) -> None:
    log = SqlNotificationLog(db)
    try:
        for pid in payment_ids:
            assert await log.record(NotificationRecord(
                dedupe_key=f"mercadopago:payment:{pid}", provider="mercadopago",
                topic="payment", action="payment.created", resource_id=pid, request_id=None,
                received_at=T0, ignored=False,
            ))
    finally:
        await log.close()


async def notification_rows(db: Database) -> list:
    n = t.notifications
    async with db.read() as conn:
        return list((await conn.execute(select(n).order_by(n.c.id))).all())


async def test_a_claim_holds_rows_for_one_lease_and_a_heartbeat_extends_it(db: Database):
    await record(db, "1", "2", "3")
    queue = SqlNotificationQueue(db)
    first = await queue.claim_due(limit=2, now=T0, lease=LEASE)
    assert [c.resource_id for c in first] == ["1", "2"]  # oldest first
    second = await queue.claim_due(limit=5, now=T0, lease=LEASE)
    assert [c.resource_id for c in second] == ["3"]  # never a claimed row
    await queue.extend(first, until=T0 + 2 * LEASE)
    lapsed = await queue.claim_due(limit=5, now=T0 + LEASE, lease=10 * LEASE)
    assert [c.resource_id for c in lapsed] == ["3"]  # its lease ended; the extended ones hold
    later = await queue.claim_due(limit=5, now=T0 + 2 * LEASE, lease=LEASE)
    assert [c.resource_id for c in later] == ["1", "2"]


async def test_a_heartbeat_after_the_work_was_finished_resurrects_nothing(db: Database):
    await record(db, "1")
    queue, uow = SqlNotificationQueue(db), SqlPaymentsUnitOfWork(db, lambda: T0)
    claimed = await queue.claim_due(limit=5, now=T0, lease=LEASE)
    async with uow.begin() as tx:
        await tx.notifications.mark_processed([c.id for c in claimed], now=T0)
    await queue.extend(claimed, until=T0 + LEASE)  # a heartbeat landing late
    (row,) = await notification_rows(db)
    assert row.status == NotificationStatus.PROCESSED and row.next_attempt_at == T0 + LEASE
    assert await queue.claim_due(limit=5, now=T0 + 10 * LEASE, lease=LEASE) == []


async def test_failures_become_retries_or_dead_rows_with_their_reason(db: Database):
    await record(db, "1", "2", "3")
    queue = SqlNotificationQueue(db)
    a, b, c = await queue.claim_due(limit=5, now=T0, lease=LEASE)
    retry_at = T0 + timedelta(seconds=7)
    await queue.record_failures([
        FailedTry(a, "GatewayUnavailable: 503", RetryDecision(retry_at, spends_attempt=False)),
        FailedTry(b, "GatewayRejected: 401", RetryDecision(retry_at, spends_attempt=True)),
        FailedTry(c, "GatewayRejected: 401", RetryDecision(None, True, "permanent: failed 3")),
    ], now=T0)
    rows = await notification_rows(db)
    assert [(r.status, r.attempts, r.failures) for r in rows] == [
        (NotificationStatus.RECEIVED, 1, 0),
        (NotificationStatus.RECEIVED, 1, 1),
        (NotificationStatus.DEAD, 1, 1),
    ]
    assert [r.next_attempt_at for r in rows[:2]] == [retry_at, retry_at]
    assert rows[2].last_error == "permanent: failed 3; GatewayRejected: 401"
    assert rows[2].processed_at == T0
    await queue.record_failures(  # a second word on a dead row changes nothing
        [FailedTry(c, "again", RetryDecision(retry_at, spends_attempt=True))], now=T0
    )
    assert (await notification_rows(db))[2].status == NotificationStatus.DEAD


async def test_an_outbox_message_given_up_is_dead_and_a_dead_letter(db: Database):
    uow = SqlPaymentsUnitOfWork(db, lambda: T0)
    envelope = Envelope(
        type=EventType.PAYMENT_APPROVED, occurred_at=T0, order_id="o-1", payment_id="1",
        provider="mercadopago", amount=Money.parse("10.00", "BRL"), payment_version=1,
        correlation_id="mercadopago:1", message_id=uuid.uuid4(),
    )
    async with uow.begin() as tx:
        await tx.outbox.add(envelope, exchange="payments")
    store = uow.relay_store
    (message,) = await store.claim_due(limit=5, now=T0, lease=LEASE)
    await store.record_failures(
        [FailedTry(message, "boom", RetryDecision(T0 + LEASE, spends_attempt=True))], now=T0
    )
    (message,) = await store.claim_due(limit=5, now=T0 + LEASE, lease=LEASE)
    assert message.attempts == 1
    gave_up = "failed: retries exhausted after 2 tries"
    await store.record_failures(
        [FailedTry(message, "boom", RetryDecision(None, True, gave_up))], now=T0
    )
    async with db.read() as conn:
        outbox = (await conn.execute(select(t.payments_outbox))).one()
        letter = (await conn.execute(select(t.payments_dead_letters))).one()
    assert (outbox.status, outbox.attempts) == (OutboxStatus.DEAD, 2)
    assert (letter.message_id, letter.attempts) == (str(envelope.message_id), 2)
    assert letter.reason == "consumer retries exhausted"
    assert await store.pending_count() == 0
