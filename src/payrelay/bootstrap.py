"""The one place where adapters are chosen and wired; nothing is built at import time.

Entrypoints get everything they need from adapters through this module: a `System` of
services, ports and read models, and a few functions for one-off commands (migrations,
dead letters, the demo's scratch databases and broker topology).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from payrelay.adapters.gateways.mercadopago import MercadoPagoGateway
from payrelay.adapters.gateways.wire import AiohttpWire
from payrelay.adapters.payments_client import HttpPaymentsClient
from payrelay.adapters.resources import AdapterResources, HttpClient
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.dead_letters import SqlDeadLetterBox, open_dead_letter_box
from payrelay.adapters.storage.forgetful_inbox import ForgetfulInboxUnitOfWork
from payrelay.adapters.storage.migrations import Schema, ensure_current, upgrade_database
from payrelay.adapters.storage.operations import open_operations, operations_for
from payrelay.adapters.storage.orders import SqlOrdersUnitOfWork
from payrelay.adapters.storage.payments import (
    SqlNotificationQueue,
    SqlPaymentsUnitOfWork,
)
from payrelay.adapters.storage.provision import scratch_databases
from payrelay.adapters.storage.queries import SqlOrdersReadModel, SqlPaymentsReadModel
from payrelay.adapters.storage.reconciliation import SqlReconciliationStore
from payrelay.adapters.storage.refunds import SqlRefundQueue
from payrelay.adapters.transports.local import LocalTransport
from payrelay.config import Settings
from payrelay.domain.retry import RetryPolicy
from payrelay.failure_log import FailureLog
from payrelay.faults import Faults
from payrelay.ports import (
    Clock,
    DeadLetterBox,
    Gateway,
    OrdersUnitOfWork,
    OutboxRelayStore,
    PaymentsClient,
    PaymentsUnitOfWork,
    Transport,
)
from payrelay.services.checkout import CheckoutService
from payrelay.services.compensate import Refunder
from payrelay.services.consume import OrderOutcomeConsumer, PaymentEventConsumer
from payrelay.services.ingest import WebhookIngest
from payrelay.services.orders import OrderService
from payrelay.services.process import PaymentProcessor
from payrelay.services.reconcile import Reconciler
from payrelay.services.relay import OutboxRelay
from payrelay.system import WORKER_ROLES, OrdersSide, PaymentsSide, Role, Side, System

__all__ = [
    "WORKER_ROLES", "AdapterResources", "Role", "System", "adapter_resources", "bootstrap",
    "build_transport", "dead_letter_box", "delete_broker_topology", "migrate",
    "open_operations",
    "scratch_databases", "utc_now",
]


log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def adapter_resources(system: System) -> AdapterResources:
    """The databases and HTTP clients behind a System that `bootstrap` built."""
    if not isinstance(system.resources, AdapterResources):
        raise TypeError("this System was not built by bootstrap()")
    return system.resources


@dataclass(frozen=True)
class _Shared:
    """What every worker is built with: one clock, fault set, RNG and failure log."""

    settings: Settings
    clock: Clock
    faults: Faults
    rng: random.Random
    failure_log: FailureLog
    retry: RetryPolicy
    transport: Transport

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    def relay(self, store: OutboxRelayStore, role: Role) -> OutboxRelay:
        return OutboxRelay(
            store=store, transport=self.transport, clock=self.clock, faults=self.faults,
            retry=self.retry, rng=self.rng, failure_log=self.failure_log, name=role.value,
            batch_size=self.settings.relay_batch_size, lease=self.lease,
        )


async def bootstrap(
    settings: Settings,
    *,
    gateway: Gateway | None = None,
    transport: Transport | None = None,
    payments_client: PaymentsClient | None = None,
    faults: Faults | None = None,
    clock: Clock = utc_now,
    seed: int | None = None,
    check_schema: Iterable[Role] = tuple(Role),
) -> System:
    """Build every component from settings; overrides replace the adapters they name."""
    resources = AdapterResources.open(
        payments_url=settings.payments_database_url, orders_url=settings.orders_database_url
    )
    try:
        if gateway is None:
            gateway = _build_gateway(settings, resources.http_clients)
        if payments_client is None:
            payments_client = _build_payments_client(settings, resources.http_clients)
        if transport is None:
            transport = await build_transport(settings, clock=clock)
        for side in {role.side for role in check_schema}:
            db = resources.orders_db if side is Side.ORDERS else resources.payments_db
            await ensure_current(db, Schema(side.value))
    except BaseException:
        await resources.close()
        raise
    shared = _Shared(
        settings, clock, faults or Faults(), random.Random(seed), FailureLog(clock),
        settings.retry_policy(), transport,
    )
    payments = _build_payments_side(shared, gateway, resources)
    orders = _build_orders_side(shared, payments_client, resources.orders_db)
    dead_letters = SqlDeadLetterBox(
        payments=resources.payments_db, orders=resources.orders_db, clock=clock
    )
    ops = operations_for(resources, clock, settings.heartbeat_interval_seconds)
    return System(settings, shared.faults, transport, payments, orders, dead_letters, resources,
                  clock, resources.wakeups, *ops)


def _build_gateway(settings: Settings, clients: list[HttpClient]) -> Gateway:
    wire = AiohttpWire(settings.gateway_base_url, timeout=settings.gateway_timeout_seconds)
    clients.append(wire)
    return MercadoPagoGateway(wire, access_token=settings.gateway_access_token.get_secret_value())


def _build_payments_client(
    settings: Settings, clients: list[HttpClient]
) -> PaymentsClient:
    http = httpx.AsyncClient(base_url=settings.payments_url, timeout=10.0)
    clients.append(http)
    return HttpPaymentsClient(http, token=settings.service_token.get_secret_value)


def _build_payments_side(
    shared: _Shared, gateway: Gateway, resources: AdapterResources
) -> PaymentsSide:
    s, db = shared.settings, resources.payments_db
    uow = SqlPaymentsUnitOfWork(db, shared.clock)
    consumer_uow: PaymentsUnitOfWork = ForgetfulInboxUnitOfWork(uow) if _broken(s) else uow
    wake_processor, wake_relay, wake_refunder = asyncio.Event(), asyncio.Event(), asyncio.Event()
    return PaymentsSide(
        reads=SqlPaymentsReadModel(db), uow=uow, notification_log=resources.notification_log,
        ingest=_build_ingest(shared, gateway.provider, resources, wake_processor),
        processor=_build_processor(shared, gateway, uow, db, wake_relay),
        relay=shared.relay(uow.relay_store, Role.PAYMENTS_RELAY),
        outcomes=OrderOutcomeConsumer(
            uow=consumer_uow, clock=shared.clock, faults=shared.faults,
            mismatch_policy=s.amount_mismatch_policy, on_refund_requested=wake_refunder,
            failure_log=shared.failure_log,
        ),
        checkout=CheckoutService(
            uow=uow, gateway=gateway, clock=shared.clock, notification_url=s.notification_url
        ),
        refunder=Refunder(
            queue=SqlRefundQueue(db), uow=uow, gateway=gateway, clock=shared.clock,
            faults=shared.faults, retry=shared.retry, rng=shared.rng,
            failure_log=shared.failure_log, lease=shared.lease,
        ),
        reconciler=Reconciler(
            store=SqlReconciliationStore(db), notifications=resources.notification_log,
            gateway=gateway, clock=shared.clock, policy=s.reconcile_policy(),
        ),
        wake_processor=wake_processor, wake_relay=wake_relay, wake_refunder=wake_refunder,
    )


def _broken(settings: Settings) -> bool:
    """Whether this is the deliberately broken build of a test (see forgetful_inbox.py)."""
    if settings.test_only_forgetful_inbox:
        log.error("PAYRELAY_TEST_ONLY_FORGETFUL_INBOX is set: the consumers' inboxes "
                  "remember nothing and redeliveries are applied twice (a test's broken build)")
    return settings.test_only_forgetful_inbox


def _build_ingest(
    shared: _Shared, provider: str, resources: AdapterResources, wake: asyncio.Event
) -> WebhookIngest:
    s = shared.settings
    return WebhookIngest(
        provider=provider, secrets=s.webhook_secret_list, log=resources.notification_log,
        clock=shared.clock, faults=shared.faults, on_recorded=wake.set,
        max_body_bytes=s.webhook_max_body_bytes,
        ipn_window=timedelta(seconds=s.ipn_window_seconds),
        ts_tolerance=timedelta(seconds=s.webhook_ts_tolerance_seconds),
    )


def _build_processor(
    shared: _Shared, gateway: Gateway, uow: SqlPaymentsUnitOfWork, db: Database,
    wake_relay: asyncio.Event,
) -> PaymentProcessor:
    s = shared.settings
    return PaymentProcessor(
        uow=uow, queue=SqlNotificationQueue(db), gateway=gateway, clock=shared.clock,
        faults=shared.faults, retry=shared.retry, rng=shared.rng,
        failure_log=shared.failure_log, batch_size=s.processor_batch_size, lease=shared.lease,
        fetch_interval=timedelta(seconds=s.payment_fetch_interval_seconds),
        on_committed=wake_relay,
    )


def _build_orders_side(
    shared: _Shared, payments_client: PaymentsClient, db: Database
) -> OrdersSide:
    uow = SqlOrdersUnitOfWork(db, shared.clock)
    consumer_uow: OrdersUnitOfWork = (
        ForgetfulInboxUnitOfWork(uow) if _broken(shared.settings) else uow
    )
    wake_relay = asyncio.Event()
    return OrdersSide(
        reads=SqlOrdersReadModel(db), uow=uow,
        relay=shared.relay(uow.relay_store, Role.ORDERS_RELAY),
        consumer=PaymentEventConsumer(
            uow=consumer_uow, clock=shared.clock, faults=shared.faults, on_committed=wake_relay,
            failure_log=shared.failure_log,
        ),
        service=OrderService(uow=uow, payments=payments_client, clock=shared.clock),
        wake_relay=wake_relay,
    )


async def build_transport(settings: Settings, *, clock: Clock = utc_now) -> Transport:
    """The in-process transport for "local", otherwise RabbitMQ, connected and declared."""
    url = settings.broker_url.get_secret_value()
    if url == "local":
        return LocalTransport(schedule=settings.consumer_retry_schedule(),
                              failure_log=FailureLog(clock), clock=clock)
    if not url.startswith(("amqp://", "amqps://")):
        raise ValueError("PAYRELAY_BROKER_URL must be 'local' or an amqp:// URL")
    from payrelay.adapters.transports.rabbitmq import RabbitMQTransport

    transport = RabbitMQTransport(
        url, prefetch=settings.consumer_prefetch, name_prefix=settings.broker_name_prefix,
        retry_delays=settings.consumer_retry_schedule().delays,
    )
    await transport.connect()
    return transport


# --- one-off commands --------------------------------------------------------------------


async def migrate(settings: Settings) -> None:
    """What `payrelay migrate` does: both databases to head."""
    await upgrade_database(settings.payments_database_url, Schema.PAYMENTS)
    await upgrade_database(settings.orders_database_url, Schema.ORDERS)


def dead_letter_box(
    settings: Settings, *, clock: Clock = utc_now
) -> contextlib.AbstractAsyncContextManager[DeadLetterBox]:
    """Both databases' dead letters, once each is checked to be at this code's schema."""
    return open_dead_letter_box(
        payments_url=settings.payments_database_url, orders_url=settings.orders_database_url,
        clock=clock,
    )


async def delete_broker_topology(broker_url: str, name_prefix: str) -> None:
    """Delete every RabbitMQ exchange and queue named under `name_prefix`."""
    from payrelay.adapters.transports.rabbitmq import RabbitMQTransport

    # Never connected: deleting needs only the names, which the prefix determines.
    await RabbitMQTransport(broker_url, name_prefix=name_prefix).delete_topology()
