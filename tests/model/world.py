"""The real services of the outbox/relay/inbox protocol over SQLite, on one manual clock.

Both databases are copies of files migrated once (see conftest.py). The gateway is a dict
of snapshots the machine writes: what the customer did at the gateway, its ground truth.
`Facts` is what both databases hold after a step, read straight from their tables, for
the invariants to judge.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.orders import SqlOrdersUnitOfWork
from payrelay.adapters.storage.payments import SqlNotificationQueue, SqlPaymentsUnitOfWork
from payrelay.domain.money import Money
from payrelay.domain.order import Order, OrderStatus
from payrelay.domain.payment import PaymentSnapshot, PaymentStatus
from payrelay.domain.refund import MismatchPolicy
from payrelay.domain.retry import Backoff, RetryPolicy, RetrySchedule
from payrelay.faults import Faults
from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION, PAYMENTS_SIDE_SUBSCRIPTION
from payrelay.ports import OrderLine, Transport
from payrelay.services.consume import OrderOutcomeConsumer, PaymentEventConsumer
from payrelay.services.process import PaymentProcessor
from payrelay.services.relay import OutboxRelay
from tests.contract.builders import PROVIDER, TEN, notification
from tests.simulated_gateway import ManualClock

LEASE = timedelta(seconds=30)
POLICY = RetryPolicy(backoff=Backoff(base=2.0, cap=60.0), schedule=RetrySchedule((5.0, 10.0)))
SCHEMAS = ("payments", "orders")


class SnapshotGateway:
    """The gateway's side of each payment, as the machine made it; only `fetch_payment`."""

    provider = PROVIDER

    def __init__(self) -> None:
        self.payments: dict[str, PaymentSnapshot] = {}

    async def fetch_payment(self, payment_id: str) -> PaymentSnapshot:
        return self.payments[payment_id]

    def pay(self, payment_id: str, order_id: str, *, amount: Money, approved: bool,
            now: datetime) -> None:
        status = PaymentStatus.APPROVED if approved else PaymentStatus.PENDING
        self.payments[payment_id] = PaymentSnapshot(
            payment_id=payment_id, provider=PROVIDER, order_id=order_id, status=status,
            status_detail=None, amount=amount, amount_refunded=Money.parse("0", "BRL"),
            date_created=now, date_approved=now if approved else None, date_last_updated=now,
        )

    def approve(self, payment_id: str, *, now: datetime) -> None:
        old = self.payments[payment_id]
        self.payments[payment_id] = replace(
            old, status=PaymentStatus.APPROVED, date_approved=now, date_last_updated=now)


def copy_template(template: Path, folder: Path) -> list[str]:
    """Fresh copies of the migrated databases in `folder`; their URLs, payments first."""
    for item in template.iterdir():
        shutil.copy(item, folder / item.name)
    return [sqlite_url(folder, schema) for schema in SCHEMAS]


def sqlite_url(folder: Path, schema: str) -> str:
    return f"sqlite+aiosqlite:///{folder / f'{schema}.db'}"


@dataclass
class World:
    """Both databases and every service of the protocol, wired as bootstrap wires them."""

    urls: list[str]
    transport: Transport
    clock: ManualClock
    gateway: SnapshotGateway = field(default_factory=SnapshotGateway)
    faults: Faults = field(default_factory=Faults)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def __post_init__(self) -> None:
        self.payments_db, self.orders_db = Database(self.urls[0]), Database(self.urls[1])
        self.payments = SqlPaymentsUnitOfWork(self.payments_db, self.clock)
        self.orders = SqlOrdersUnitOfWork(self.orders_db, self.clock)
        self.order_consumer = PaymentEventConsumer(
            uow=self.orders, clock=self.clock, faults=self.faults)
        self.outcome_consumer = OrderOutcomeConsumer(
            uow=self.payments, clock=self.clock, faults=self.faults,
            mismatch_policy=MismatchPolicy.HOLD,
        )

    async def subscribe(self) -> None:
        await self.transport.subscribe(ORDER_SIDE_SUBSCRIPTION, self.order_consumer.handle)
        await self.transport.subscribe(PAYMENTS_SIDE_SUBSCRIPTION,
                                       self.outcome_consumer.handle)

    def processor(self, *, batch_size: int) -> PaymentProcessor:
        return PaymentProcessor(
            uow=self.payments, queue=SqlNotificationQueue(self.payments_db),
            gateway=self.gateway, clock=self.clock, faults=self.faults, retry=POLICY,
            rng=self.rng, batch_size=batch_size, lease=LEASE,
        )

    def relay(self, side: str, *, batch_size: int) -> OutboxRelay:
        store = (self.payments if side == "payments" else self.orders).relay_store
        return OutboxRelay(store=store, transport=self.transport, clock=self.clock,
                           faults=self.faults, retry=POLICY, rng=self.rng, name=side,
                           batch_size=batch_size, lease=LEASE)

    async def add_order(self, order_id: str) -> None:
        order = Order(order_id=order_id, status=OrderStatus.PENDING_PAYMENT, total=TEN)
        async with self.orders.begin() as tx:
            await tx.orders.add(order, [OrderLine("SKU-1", 1, TEN)], description="Mate",
                                now=self.clock())

    async def notify(self, payment_id: str) -> None:
        """The webhook about `payment_id`, as ingest records it."""
        async with self.payments.begin() as tx:
            assert await tx.notifications.record(notification(payment_id, at=self.clock()))

    async def facts(self) -> Facts:
        p = await _tables(self.payments_db, t.payments, t.refunds, t.notifications,
                          t.payments_outbox, t.payments_inbox, t.payments_timeline,
                          t.payments_dead_letters)
        o = await _tables(self.orders_db, t.orders, t.order_payments, t.orders_outbox,
                          t.orders_inbox, t.orders_timeline, t.orders_dead_letters)
        return Facts(
            payments={r.payment_id: r for r in p[t.payments]},
            refunds={r.payment_id: r for r in p[t.refunds]},
            notifications=Counter(r.status for r in p[t.notifications]),
            payments_outbox=p[t.payments_outbox],
            payments_inbox=p[t.payments_inbox],
            payments_timeline=p[t.payments_timeline],
            payments_dead=p[t.payments_dead_letters],
            orders={r.order_id: r for r in o[t.orders]},
            records={r.payment_id: r for r in o[t.order_payments]},
            orders_outbox=o[t.orders_outbox],
            orders_inbox=o[t.orders_inbox],
            orders_timeline=o[t.orders_timeline],
            orders_dead=o[t.orders_dead_letters],
        )

    async def close(self) -> None:
        await self.transport.close()
        await self.payments_db.dispose()
        await self.orders_db.dispose()


async def _tables(db: Database, *tables: Table) -> dict[Table, list[Any]]:
    """Every row of `tables`, read in one transaction: one consistent picture."""
    async with db.read() as conn:
        return {table: list(await conn.execute(select(table))) for table in tables}


@dataclass(frozen=True)
class Facts:
    """Every row of the tables the protocol writes, on both sides, after one step."""

    payments: dict[str, Any]
    refunds: dict[str, Any]
    notifications: Counter[str]
    payments_outbox: list[Any]
    payments_inbox: list[Any]
    payments_timeline: list[Any]
    payments_dead: list[Any]
    orders: dict[str, Any]
    records: dict[str, Any]
    orders_outbox: list[Any]
    orders_inbox: list[Any]
    orders_timeline: list[Any]
    orders_dead: list[Any]
