"""Two processors applying the same new payment at once, on PostgreSQL: nothing escapes.

Both read "no such payment" (FOR UPDATE locks no absent row) and both write it. The loser
must see a payrelay error it understands and fetch the payment again later; it must never
meet an IntegrityError, and the payment must be stored once, at version 1, with one event.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.migrations import Schema, upgrade
from payrelay.adapters.storage.payments import (
    SqlNotificationLog,
    SqlNotificationQueue,
    SqlPaymentsTx,
    SqlPaymentsUnitOfWork,
)
from payrelay.domain.payment import Payment, SnapshotVerdict
from payrelay.domain.retry import Backoff, RetryPolicy
from payrelay.faults import Faults
from payrelay.ports import NotificationRecord, PaymentsUnitOfWork
from payrelay.services.process import PaymentProcessor
from tests.raw_gateway import payment_body, raw_gateway
from tests.support import fresh_postgres_databases

pytestmark = pytest.mark.postgres

PAYMENT_ID = "1000000001"


class ReadTogether:
    """The real unit of work, except that `payments.get_many` returns only once both processors
    have read: the interleaving that loses a race, every time, instead of now and then."""

    def __init__(self, uow: SqlPaymentsUnitOfWork, barrier: asyncio.Barrier) -> None:
        self._uow, self._barrier = uow, barrier

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[Any]:
        async with self._uow.begin() as tx:
            yield _TxReadingTogether(tx, self._barrier)


class _TxReadingTogether:
    def __init__(self, tx: SqlPaymentsTx, barrier: asyncio.Barrier) -> None:
        self._tx, self._barrier = tx, barrier
        self.payments = self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    async def get_many(self, payment_ids: Sequence[str]) -> Mapping[str, Payment]:
        found = await self._tx.payments.get_many(payment_ids)
        async with asyncio.timeout(5):
            await self._barrier.wait()
        return found

    async def save_many(self, payments: Sequence[Payment], **kwargs: Any) -> set[str]:
        lost: set[str] = await self._tx.payments.save_many(payments, **kwargs)
        return lost


@pytest.fixture
async def payments_db() -> AsyncIterator[Database]:
    async with fresh_postgres_databases(1) as (url,):
        db = Database(url)
        try:
            await upgrade(db, Schema.PAYMENTS)
            yield db
        finally:
            await db.dispose()


async def test_two_processors_racing_on_a_new_payment_raise_nothing(payments_db: Database):
    offset = [timedelta(0)]

    def clock() -> datetime:
        return datetime.now(UTC) + offset[0]

    gateway, client = raw_gateway({PAYMENT_ID: payment_body(PAYMENT_ID, amount="1500.0",
                                                             currency="CLP")})
    log = SqlNotificationLog(payments_db)
    try:
        for action in ("payment.created", "payment.updated"):  # two webhooks, one payment
            assert await log.record(NotificationRecord(
                dedupe_key=f"mercadopago:payment:{PAYMENT_ID}:{action}", provider="mercadopago",
                topic="payment", action=action, resource_id=PAYMENT_ID, request_id=None,
                received_at=clock(), ignored=False,
            ))
        uow = SqlPaymentsUnitOfWork(payments_db, clock)

        def processor(unit_of_work: PaymentsUnitOfWork, seed: int) -> PaymentProcessor:
            return PaymentProcessor(
                uow=unit_of_work, queue=SqlNotificationQueue(payments_db), gateway=gateway,
                clock=clock, faults=Faults(), retry=RetryPolicy(backoff=Backoff(base=0.5, cap=1.0)),
                rng=random.Random(seed), batch_size=1,  # one notification each
            )

        racing = ReadTogether(uow, asyncio.Barrier(2))
        results = await asyncio.gather(processor(racing, 1).run_once(),
                                       processor(racing, 2).run_once())

        assert [r.claimed for r in results] == [1, 1]
        assert sorted(r.events for r in results) == [0, 1]
        assert sorted(r.retried for r in results) == [0, 1]  # the loser fetches it again
        async with payments_db.read() as conn:
            rows = (await conn.execute(select(t.payments))).all()
            events = (await conn.execute(select(t.payments_outbox))).all()
            notes = (await conn.execute(select(t.notifications).order_by(t.notifications.c.id)
                                        )).all()
        assert [(r.payment_id, r.version, r.amount_minor) for r in rows] == [
            (PAYMENT_ID, 1, 1500)
        ]
        assert [e.routing_key for e in events] == ["payment.approved"]
        assert sorted(n.status for n in notes) == ["processed", "received"]
        (lost,) = [n for n in notes if n.status == "received"]
        assert lost.attempts == 1 and lost.last_error.startswith("ConcurrentUpdate")

        # Its retry comes due: the payment is fetched again, found unchanged, and no second
        # event is written.
        offset[0] = timedelta(minutes=5)
        again = await processor(uow, 3).run_once()
        assert (again.claimed, again.events, again.retried) == (1, 0, 0)
        assert again.verdicts == {SnapshotVerdict.UNCHANGED: 1}
        async with payments_db.read() as conn:
            assert len((await conn.execute(select(t.payments_outbox))).all()) == 1
            statuses = (await conn.execute(select(t.notifications.c.status))).scalars().all()
        assert set(statuses) == {"processed"}
    finally:
        await log.close()
        await client.aclose()
