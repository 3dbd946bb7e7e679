"""Services over the memory adapters and the in-process gateway simulator, on one clock.

Nothing here sleeps or runs a worker loop: a test calls `run_once()` or `handle()` itself
and moves the clock to when the next step is due. The simulator is reached through the
real MercadoPago adapter over httpx's ASGI transport (no sockets), and shares the clock.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from payrelay.adapters import memory
from payrelay.adapters.transports.local import LocalTransport
from payrelay.domain.order import Order, OrderStatus
from payrelay.domain.refund import MismatchPolicy
from payrelay.domain.retry import Backoff, RetryPolicy, RetrySchedule
from payrelay.faults import Faults
from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION, PAYMENTS_SIDE_SUBSCRIPTION
from payrelay.ports import Gateway, OrderLine
from payrelay.services.compensate import Refunder
from payrelay.services.consume import OrderOutcomeConsumer, PaymentEventConsumer
from payrelay.services.process import PaymentProcessor
from payrelay.services.reconcile import ReconcilePolicy, Reconciler
from payrelay.services.relay import OutboxRelay
from tests.contract.builders import TEN, notification
from tests.simulated_gateway import ManualClock, SimulatedGateway, simulated_gateway

LEASE = timedelta(seconds=30)
POLICY = RetryPolicy(
    backoff=Backoff(base=2.0, cap=60.0),
    schedule=RetrySchedule((5.0, 10.0)),
    permanent_tries=3,
    not_visible_grace=timedelta(minutes=10),
)


@dataclass
class World:
    """Both memory databases, the simulator, and services built on them as bootstrap does."""

    clock: ManualClock
    mp: SimulatedGateway
    payments_db: memory.PaymentsDatabase = field(default_factory=memory.payments_database)
    orders_db: memory.OrdersDatabase = field(default_factory=memory.orders_database)
    faults: Faults = field(default_factory=Faults)
    transport: LocalTransport = field(default_factory=LocalTransport)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def __post_init__(self) -> None:
        self.payments = memory.MemoryPaymentsUnitOfWork(self.payments_db, self.clock)
        self.orders = memory.MemoryOrdersUnitOfWork(self.orders_db, self.clock)
        self.log = memory.MemoryNotificationLog(self.payments_db)
        self.order_consumer = PaymentEventConsumer(uow=self.orders, clock=self.clock,
                                                   faults=self.faults)
        self.outcome_consumer = OrderOutcomeConsumer(
            uow=self.payments, clock=self.clock, faults=self.faults,
            mismatch_policy=MismatchPolicy.HOLD,
        )

    @property
    def p(self) -> memory.PaymentsState:
        """The payments database as committed: what tests assert on."""
        return self.payments_db.state

    @property
    def o(self) -> memory.OrdersState:
        return self.orders_db.state

    def processor(self, *, fetch_interval: timedelta = timedelta(0)) -> PaymentProcessor:
        return PaymentProcessor(
            uow=self.payments, queue=memory.MemoryNotificationQueue(self.payments_db),
            gateway=self.mp.gateway, clock=self.clock, faults=self.faults, retry=POLICY,
            rng=self.rng, lease=LEASE, fetch_interval=fetch_interval,
        )

    def relay(self, side: str) -> OutboxRelay:
        store = (self.payments if side == "payments" else self.orders).relay_store
        return OutboxRelay(store=store, transport=self.transport, clock=self.clock,
                           faults=self.faults, retry=POLICY, rng=self.rng, name=side,
                           lease=LEASE)

    def refunder(self, gateway: Gateway | None = None) -> Refunder:
        return Refunder(
            queue=memory.MemoryRefundQueue(self.payments_db), uow=self.payments,
            gateway=gateway or self.mp.gateway, clock=self.clock, faults=self.faults,
            retry=POLICY, rng=self.rng, lease=LEASE,
        )

    def reconciler(self, policy: ReconcilePolicy | None = None) -> Reconciler:
        return Reconciler(
            store=memory.MemoryReconciliationStore(self.payments_db), notifications=self.log,
            gateway=self.mp.gateway, clock=self.clock, policy=policy or ReconcilePolicy(),
        )

    async def subscribe_consumers(self) -> None:
        await self.transport.subscribe(ORDER_SIDE_SUBSCRIPTION, self.order_consumer.handle)
        await self.transport.subscribe(PAYMENTS_SIDE_SUBSCRIPTION,
                                       self.outcome_consumer.handle)

    async def add_order(self, order_id: str = "order-1") -> None:
        order = Order(order_id=order_id, status=OrderStatus.PENDING_PAYMENT, total=TEN)
        async with self.orders.begin() as tx:
            await tx.orders.add(order, [OrderLine("SKU-1", 1, TEN)], description="Mate",
                                now=self.clock())

    async def pay(self, order_id: str = "order-1", outcome: str = "approve") -> str:
        """The customer pays at the gateway; no webhook is sent (no notification URL)."""
        return str(await self.mp.simulator.pay(self.mp.checkout(order_id), outcome))

    async def notify(self, payment_id: str) -> None:
        """The webhook, as ingest records it."""
        assert await self.log.record(notification(payment_id, at=self.clock()))


@pytest.fixture
async def world() -> AsyncIterator[World]:
    clock = ManualClock()
    async with simulated_gateway(clock=clock) as mp:
        yield World(clock, mp)
