"""The running system: which roles a process plays, and the components each side owns.

`bootstrap` builds it; entrypoints start the roles they were asked for and close it. It holds
services, ports and read models only: which adapters stand behind them is bootstrap's
business (and what they opened is released by `Resources.close`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Protocol

from payrelay.config import Settings
from payrelay.faults import Faults
from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION, PAYMENTS_SIDE_SUBSCRIPTION
from payrelay.ports import (
    Clock,
    DeadLetterBox,
    Heartbeats,
    NotificationLog,
    Operations,
    OrdersReadModel,
    OrdersUnitOfWork,
    PaymentsReadModel,
    PaymentsUnitOfWork,
    Resources,
    Subscription,
    Transport,
    WakeChannel,
    Wakeups,
)
from payrelay.ports.metrics import Metrics, NoMetrics
from payrelay.services.checkout import CheckoutService
from payrelay.services.compensate import Refunder
from payrelay.services.consume import OrderOutcomeConsumer, PaymentEventConsumer
from payrelay.services.dead_letter_sink import DeadLetterSink
from payrelay.services.ingest import WebhookIngest
from payrelay.services.loop import run_loop
from payrelay.services.orders import OrderService
from payrelay.services.process import PaymentProcessor
from payrelay.services.reconcile import Reconciler
from payrelay.services.relay import OutboxRelay

log = logging.getLogger(__name__)


class Side(StrEnum):
    """Which database a role works on."""

    PAYMENTS = "payments"
    ORDERS = "orders"


class Role(StrEnum):
    """What one process does; `payrelay serve --role …` runs any mix of them."""

    PAYMENTS_API = "payments-api"
    """Checkout links and the gateway's webhooks (stateless: run as many as needed)."""
    ORDERS_API = "orders-api"
    """The reference orders service's HTTP API (stateless)."""
    PROCESSOR = "processor"
    """Fetches notified payments from the gateway, writes state + outbox."""
    PAYMENTS_RELAY = "payments-relay"
    """Publishes the payments outbox (payment events)."""
    ORDERS_RELAY = "orders-relay"
    """Publishes the orders outbox (order outcomes)."""
    ORDER_CONSUMER = "order-consumer"
    """Applies payment events to orders."""
    OUTCOME_CONSUMER = "outcome-consumer"
    """Records the order side's outcomes on the payments side (and refund intents)."""
    ORDER_EXPIRER = "order-expirer"
    """Expires orders left unpaid past PAYRELAY_ORDER_EXPIRY_SECONDS."""
    RECONCILER = "reconciler"
    """Every PAYRELAY_RECONCILE_INTERVAL_SECONDS: re-sends unanswered approvals, finds lost
    webhooks by searching the gateway, refetches payments left unsettled."""
    REFUNDER = "refunder"
    """Refunds payments the order side rejected, through the gateway."""

    @property
    def side(self) -> Side:
        return Side.ORDERS if self in _ORDER_SIDE else Side.PAYMENTS


_ORDER_SIDE = frozenset(
    {Role.ORDERS_API, Role.ORDERS_RELAY, Role.ORDER_CONSUMER, Role.ORDER_EXPIRER}
)
WORKER_ROLES = frozenset(Role) - {Role.PAYMENTS_API, Role.ORDERS_API}
ROLE_SUBSCRIPTIONS: dict[Role, Subscription] = {
    Role.ORDER_CONSUMER: ORDER_SIDE_SUBSCRIPTION,
    Role.OUTCOME_CONSUMER: PAYMENTS_SIDE_SUBSCRIPTION,
}
"""The queues a role consumes, and so declares: no other role declares a queue. A payments-
only deployment therefore never creates the reference order side's queue, which nobody would
drain (a shop's own order service declares its own; see docs/integration.md)."""


def subscriptions_for(roles: Iterable[Role]) -> tuple[Subscription, ...]:
    """The subscriptions (queues) the processes running `roles` declare, in a fixed order."""
    wanted = set(roles)
    return tuple(s for role, s in ROLE_SUBSCRIPTIONS.items() if role in wanted)


@dataclass
class PaymentsSide:
    reads: PaymentsReadModel
    uow: PaymentsUnitOfWork
    notification_log: NotificationLog
    ingest: WebhookIngest
    processor: PaymentProcessor
    relay: OutboxRelay
    outcomes: OrderOutcomeConsumer
    checkout: CheckoutService
    refunder: Refunder
    reconciler: Reconciler
    wake_processor: asyncio.Event
    wake_relay: asyncio.Event
    wake_refunder: asyncio.Event


@dataclass
class OrdersSide:
    reads: OrdersReadModel
    uow: OrdersUnitOfWork
    relay: OutboxRelay
    consumer: PaymentEventConsumer
    service: OrderService
    wake_relay: asyncio.Event


@dataclass
class System:
    settings: Settings
    faults: Faults
    transport: Transport
    payments: PaymentsSide
    orders_side: OrdersSide | None
    """None when the deployment has no orders database (payments-side roles only)."""
    dead_letters: DeadLetterBox
    resources: Resources
    clock: Clock
    wakeups: Wakeups
    """News of work committed by other processes; in-process news sets the events directly."""
    operations: Operations
    """Trace, status and held refunds (`payrelay trace`, `status`, `refunds`, `/admin`)."""
    heartbeats: Heartbeats
    metrics: Metrics = field(default_factory=NoMetrics)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def orders(self) -> OrdersSide:
        """The order side's components; only a deployment with an orders database has them."""
        if self.orders_side is None:
            raise ValueError("this deployment has no orders database "
                             "(PAYRELAY_ORDERS_DATABASE_URL is empty): run payments-side roles")
        return self.orders_side

    async def start_workers(self, roles: Iterable[Role] = WORKER_ROLES) -> None:
        roles = set(roles)
        await self._subscribe_consumers(roles)
        poll = self.settings.poll_interval_seconds
        p = self.payments
        # Each polling role, and the channel on which other processes' news wakes it.
        loops: list[tuple[Role, Callable[[], Awaitable[int]], asyncio.Event, WakeChannel | None]]
        loops = [
            (Role.PROCESSOR, _claimed(p.processor.run_once), p.wake_processor,
             WakeChannel.NOTIFICATIONS),
            (Role.PAYMENTS_RELAY, _claimed(p.relay.run_once), p.wake_relay,
             WakeChannel.PAYMENTS_OUTBOX),
            (Role.REFUNDER, _claimed(p.refunder.run_once), p.wake_refunder, WakeChannel.REFUNDS),
        ]
        if roles & _ORDER_SIDE:  # only then is there an orders database to work on
            o = self.orders
            loops += [
                (Role.ORDERS_RELAY, _claimed(o.relay.run_once), o.wake_relay,
                 WakeChannel.ORDERS_OUTBOX),
                (Role.ORDER_EXPIRER, self._expire_orders, asyncio.Event(), None),
            ]
        wakes: dict[WakeChannel, asyncio.Event] = {}
        for name, step, wake, channel in loops:
            if name not in roles:
                continue
            if channel is not None:
                wakes[channel] = wake
            task = run_loop(name, step, wake=wake, stop=self.stop, poll_interval=poll)
            self.tasks.append(asyncio.create_task(task, name=name))
        self._start_heartbeat(roles & WORKER_ROLES)
        listening = self.wakeups.listen(wakes, stop=self.stop)
        self.tasks.append(asyncio.create_task(listening, name="wakeups"))
        if Role.RECONCILER in roles:
            task = run_loop(Role.RECONCILER, self._reconcile, wake=asyncio.Event(),
                            stop=self.stop, poll_interval=self.settings.reconcile_interval_seconds)
            self.tasks.append(asyncio.create_task(task, name=Role.RECONCILER))

    async def _subscribe_consumers(self, roles: set[Role]) -> None:
        p = self.payments
        if Role.ORDER_CONSUMER in roles:
            o = self.orders
            await self.transport.subscribe(ORDER_SIDE_SUBSCRIPTION, o.consumer.handle)
            sink = DeadLetterSink(uow=o.uow, subscription=ORDER_SIDE_SUBSCRIPTION, clock=self.clock,
                                  metrics=self.metrics)
            await self.transport.subscribe_dead_letters(ORDER_SIDE_SUBSCRIPTION, sink.handle)
        if Role.OUTCOME_CONSUMER in roles:
            await self.transport.subscribe(PAYMENTS_SIDE_SUBSCRIPTION, p.outcomes.handle)
            sink = DeadLetterSink(
                uow=p.uow, subscription=PAYMENTS_SIDE_SUBSCRIPTION, clock=self.clock,
                metrics=self.metrics,
            )
            await self.transport.subscribe_dead_letters(PAYMENTS_SIDE_SUBSCRIPTION, sink.handle)

    def _start_heartbeat(self, roles: set[Role]) -> None:
        """Beat every heartbeat_interval_seconds while these worker roles run; a failed
        beat is the loop's to log and retry, and never stops the workers."""
        if not roles:
            return
        name = f"{socket.gethostname()}:{os.getpid()}"
        sides = {role.side.value for role in roles}

        async def beat() -> int:
            await self.heartbeats.beat(name, sorted(roles), at=self.clock(), sides=sides)
            return 0  # paced by the interval

        task = run_loop("heartbeat", beat, wake=asyncio.Event(), stop=self.stop,
                        poll_interval=self.settings.heartbeat_interval_seconds)
        self.tasks.append(asyncio.create_task(task, name="heartbeat"))

    async def _reconcile(self) -> int:
        report = await self.payments.reconciler.run_once()
        for check, found in report.repairs().items():  # the reconciler logged each one
            self.metrics.reconciler_fixed(check=check, count=len(found))
        return 0  # paced by the interval, never run back to back

    async def _expire_orders(self) -> int:
        older_than = timedelta(seconds=self.settings.order_expiry_seconds)
        await self.orders.service.expire_unpaid(older_than=older_than)
        return 0  # checked once per poll interval, however many expired

    async def close(self) -> None:
        """Stop the loops after their current step, then release every resource."""
        self.stop.set()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.transport.close()  # consumers finish their batch before it returns
        await self.resources.close()


class _HasClaimed(Protocol):
    @property
    def claimed(self) -> int: ...


def _claimed(run_once: Callable[[], Awaitable[_HasClaimed]]) -> Callable[[], Awaitable[int]]:
    async def step() -> int:
        return (await run_once()).claimed

    return step
