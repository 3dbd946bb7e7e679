"""Several relays and consumers on one PostgreSQL database: no row twice, no order twice."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.migrations import Schema, upgrade
from payrelay.adapters.storage.orders import SqlOrdersUnitOfWork
from payrelay.adapters.storage.payments import SqlPaymentsUnitOfWork
from payrelay.adapters.transports.local import LocalTransport
from payrelay.domain.events import Envelope, EventType
from payrelay.domain.money import Money
from payrelay.domain.order import Order, OrderStatus
from payrelay.domain.retry import RetryPolicy
from payrelay.faults import Faults
from payrelay.ports import Delivery, OrderLine, Subscription
from payrelay.services.consume import PaymentEventConsumer
from payrelay.services.relay import OutboxRelay
from tests.support import fresh_postgres_databases

pytestmark = pytest.mark.postgres


def now() -> datetime:
    return datetime.now(UTC)


def approved(order_id: str, payment_id: str) -> Envelope:
    return Envelope(
        type=EventType.PAYMENT_APPROVED,
        occurred_at=now(),
        order_id=order_id,
        payment_id=payment_id,
        provider="mercadopago",
        amount=Money.parse("10.00", "BRL"),
        payment_version=1,
        correlation_id=f"mercadopago:{payment_id}",
    )


async def test_two_relays_never_publish_a_row_twice():
    async with fresh_postgres_databases(1) as (url,):
        db = Database(url)
        try:
            await upgrade(db, Schema.PAYMENTS)
            uow = SqlPaymentsUnitOfWork(db, now)
            async with uow.begin() as tx:
                for i in range(400):
                    await tx.outbox.add(approved(f"order-{i}", str(i)), exchange="ex")
            delivered: Counter[str] = Counter()

            async def record(batch: Sequence[Delivery]) -> None:
                await asyncio.sleep(0.001)  # let the other relay interleave
                delivered.update(d.message_id for d in batch)

            transport = LocalTransport()
            await transport.subscribe(Subscription("q", "ex", ("#",)), record)
            relays = [
                OutboxRelay(
                    store=uow.relay_store, transport=transport, clock=now, faults=Faults(),
                    retry=RetryPolicy(), rng=random.Random(i), batch_size=25,
                    lease=timedelta(seconds=30),
                )
                for i in range(2)
            ]

            async def drain(relay: OutboxRelay) -> int:
                claimed = 0
                while (result := await relay.run_once()).claimed:
                    claimed += result.claimed
                return claimed

            per_relay = await asyncio.gather(*(drain(r) for r in relays))
            assert sum(per_relay) == 400
            assert all(n > 0 for n in per_relay), "both relays should have taken a share"
            assert len(delivered) == 400 and set(delivered.values()) == {1}
            assert await uow.relay_store.pending_count() == 0
        finally:
            await db.dispose()


async def test_two_consumers_apply_each_payment_once():
    async with fresh_postgres_databases(1) as (url,):
        db = Database(url)
        try:
            await upgrade(db, Schema.ORDERS)
            uow = SqlOrdersUnitOfWork(db, now)
            total = Money.parse("10.00", "BRL")
            order_ids = [str(uuid.uuid4()) for _ in range(30)]
            async with uow.begin() as tx:
                for order_id in order_ids:
                    order = Order(order_id, OrderStatus.PENDING_PAYMENT, total)
                    await tx.orders.add(
                        order, [OrderLine("sku", 1, total)], description="", now=now()
                    )
            # Each order gets two different approved payments, each delivered twice, and the
            # two consumers see the same deliveries at the same time.
            deliveries = [
                Delivery(str(env.message_id), env.routing_key, env.to_json())
                for order_id in order_ids
                for env in (approved(order_id, f"{order_id}-{s}") for s in "ab")
            ]
            consumers = [PaymentEventConsumer(uow=uow, clock=now, faults=Faults())
                         for _ in range(2)]

            async def consume(consumer: PaymentEventConsumer) -> None:
                for delivery in deliveries + deliveries:
                    for _attempt in range(20):  # a lost race rolls back; redelivery retries
                        try:
                            await consumer.handle([delivery])
                            break
                        except Exception:
                            await asyncio.sleep(0.005)
                    else:
                        raise AssertionError("a delivery never committed")

            await asyncio.gather(*(consume(c) for c in consumers))
            async with uow.begin() as tx:
                for order_id in order_ids:
                    order = await tx.orders.get(order_id)
                    assert order is not None and order.status is OrderStatus.PAID
                    assert order.version == 2  # moved exactly once
                    records = [await tx.orders.get_payment(f"{order_id}-{s}") for s in "ab"]
                    outcomes = sorted(r.outcome.type.value for r in records if r and r.outcome)
                    assert outcomes == ["order.payment_applied", "order.payment_rejected"]
            applied = sum(c.stats.consumed - c.stats.duplicates for c in consumers)
            assert applied == len(deliveries)
        finally:
            await db.dispose()
