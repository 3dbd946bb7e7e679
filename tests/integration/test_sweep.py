"""The reconciler's sweep on a manual clock: the simulator's app through the MercadoPago
adapter, the real reconciliation store and notification log on SQLite. No webhooks here:
whatever payrelay learns, it learns by sweeping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.migrations import Schema, upgrade
from payrelay.adapters.storage.payments import SqlNotificationLog
from payrelay.adapters.storage.reconciliation import SqlReconciliationStore
from payrelay.services.reconcile import ReconcilePolicy, Reconciler
from payrelay.simulator import SimulatorFaults
from tests.simulated_gateway import SimulatedGateway, simulated_gateway

SMALL_PAGES = ReconcilePolicy(
    sweep_page_size=2,
    sweep_max_pages=2,
    sweep_overlap=timedelta(minutes=1),
    sweep_first_lookback=timedelta(hours=1),
)


@dataclass
class Sweeping:
    mp: SimulatedGateway
    db: Database
    store: SqlReconciliationStore
    log: SqlNotificationLog

    def reconciler(self, policy: ReconcilePolicy = SMALL_PAGES) -> Reconciler:
        return Reconciler(
            store=self.store, notifications=self.log, gateway=self.mp.gateway,
            clock=self.mp.clock, policy=policy,
        )

    async def recorded(self) -> list[str]:
        """Payment ids the reconciler recorded notifications for, in recording order."""
        n = t.notifications
        async with self.db.read() as conn:
            query = select(n.c.resource_id).where(n.c.action == "reconciler").order_by(n.c.id)
            return list((await conn.execute(query)).scalars())

    async def watermark(self) -> str:
        mark = await self.store.sweep_watermark("mercadopago")
        assert mark is not None
        return mark.isoformat()


@pytest.fixture
async def sweeping(tmp_path: Path) -> AsyncIterator[Sweeping]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'payments.db'}")
    await upgrade(db, Schema.PAYMENTS)
    log = SqlNotificationLog(db)
    try:
        async with simulated_gateway() as mp:
            yield Sweeping(mp, db, SqlReconciliationStore(db), log)
    finally:
        await log.close()
        await db.dispose()


async def pay_one_a_second(mp: SimulatedGateway, count: int) -> list[str]:
    preference_id = mp.checkout("order-1")
    ids = []
    for _ in range(count):
        ids.append(str(await mp.simulator.pay(preference_id, "reject")))
        mp.clock.advance(seconds=1)
    return ids


def updated(mp: SimulatedGateway, payment_id: str) -> str:
    return str(mp.simulator.peek_payment(payment_id)["date_last_updated"])


async def test_an_interrupted_sweep_keeps_its_watermark_behind_what_it_did_not_read(
    sweeping: Sweeping,
) -> None:
    mp = sweeping.mp
    ids = await pay_one_a_second(mp, 7)
    mp.clock.advance(minutes=10)
    reconciler = sweeping.reconciler()

    mp.wire.cut = {len(mp.wire.requests) + 2}  # the second page never arrives
    first = await reconciler.run_once()

    assert (first.sweep_pages, first.sweep_complete) == (1, False)
    assert first.gateway_errors and first.gateway_errors[0].startswith("sweep from")
    assert first.lost_payments_found == ids[:2]
    # Read up to the second payment's update, and no further.
    mark = datetime.fromisoformat(await sweeping.watermark())
    assert mark == datetime.fromisoformat(updated(mp, ids[1]))
    assert mark < datetime.fromisoformat(updated(mp, ids[2]))

    second = await reconciler.run_once()  # bounded by max pages: two pages of two

    assert (second.sweep_pages, second.sweep_complete, second.gateway_errors) == (2, False, [])
    assert second.lost_payments_found == ids[2:5]
    assert datetime.fromisoformat(await sweeping.watermark()) == datetime.fromisoformat(
        updated(mp, ids[4])
    )

    third = await reconciler.run_once()

    assert third.sweep_complete and third.lost_payments_found == ids[5:]
    assert third.sweep_watermark == (mp.clock.now - timedelta(minutes=1)).isoformat()
    assert await sweeping.recorded() == ids  # each payment recorded once, none skipped


@pytest.mark.parametrize(
    ("overlap", "found"), [(timedelta(0), False), (timedelta(minutes=1), True)]
)
async def test_the_overlap_finds_a_payment_the_gateway_listed_late(
    sweeping: Sweeping, overlap: timedelta, found: bool
) -> None:
    mp = sweeping.mp
    mp.simulator.set_faults(SimulatorFaults(visibility_delay=30.0))
    reconciler = sweeping.reconciler(ReconcilePolicy(sweep_overlap=overlap))
    await reconciler.run_once()  # the first run stores a watermark
    (late,) = await pay_one_a_second(mp, 1)
    mp.clock.advance(seconds=5)

    early = await reconciler.run_once()  # the payment exists, but is not listed yet
    mp.clock.advance(seconds=40)
    later = await reconciler.run_once()

    assert early.lost_payments_found == []
    assert later.lost_payments_found == ([late] if found else [])


async def test_the_sweep_sees_updates_to_payments_it_already_recorded(
    sweeping: Sweeping,
) -> None:
    mp = sweeping.mp
    preference_id = mp.checkout("order-2")
    payment_id = str(await mp.simulator.pay(preference_id, "pending"))
    reconciler = sweeping.reconciler()
    mp.clock.advance(seconds=1)
    assert (await reconciler.run_once()).lost_payments_found == [payment_id]
    assert (await reconciler.run_once()).lost_payments_found == []  # the same update

    mp.clock.advance(minutes=5)
    await mp.simulator.set_status(payment_id, "approved")
    mp.clock.advance(seconds=1)

    assert (await reconciler.run_once()).lost_payments_found == [payment_id]
    assert await sweeping.recorded() == [payment_id, payment_id]
