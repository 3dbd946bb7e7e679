"""The one place where adapters are chosen and wired; nothing is built at import time."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import httpx

from payrelay.adapters.gateways.mercadopago import MercadoPagoGateway
from payrelay.adapters.payments_client import HttpPaymentsClient
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.dead_letters import SqlDeadLetterBox
from payrelay.adapters.storage.migrations import Schema, ensure_current, upgrade
from payrelay.adapters.storage.orders import SqlOrdersUnitOfWork
from payrelay.adapters.storage.payments import (
    SqlNotificationLog,
    SqlNotificationQueue,
    SqlPaymentsUnitOfWork,
)
from payrelay.adapters.storage.reconciliation import SqlReconciliationStore
from payrelay.adapters.storage.refunds import SqlRefundQueue
from payrelay.adapters.transports.local import LocalTransport
from payrelay.config import Settings
from payrelay.failure_log import FailureLog
from payrelay.faults import Faults
from payrelay.ports import Clock, Gateway, OutboxRelayStore, PaymentsClient, Transport
from payrelay.services.checkout import CheckoutService
from payrelay.services.compensate import Refunder
from payrelay.services.consume import OrderOutcomeConsumer, PaymentEventConsumer
from payrelay.services.ingest import WebhookIngest
from payrelay.services.orders import OrderService
from payrelay.services.process import PaymentProcessor
from payrelay.services.reconcile import Reconciler
from payrelay.services.relay import OutboxRelay
from payrelay.system import WORKER_ROLES, OrdersSide, PaymentsSide, Role, System

log = logging.getLogger(__name__)


__all__ = ["WORKER_ROLES", "Role", "System", "bootstrap", "migrate", "migrate_check", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC)


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
    faults = faults or Faults()
    rng = random.Random(seed)
    retry = settings.retry_policy()
    failure_log = FailureLog(clock)
    clients: list[httpx.AsyncClient] = []
    lease = timedelta(seconds=settings.lease_seconds)
    if gateway is None:
        gateway_http = httpx.AsyncClient(
            base_url=settings.gateway_base_url, timeout=settings.gateway_timeout_seconds
        )
        clients.append(gateway_http)
        gateway = MercadoPagoGateway(
            gateway_http, access_token=settings.gateway_access_token.get_secret_value()
        )
    if payments_client is None:
        payments_http = httpx.AsyncClient(base_url=settings.payments_url, timeout=10.0)
        clients.append(payments_http)
        payments_client = HttpPaymentsClient(
            payments_http, token=settings.service_token.get_secret_value
        )
    transport = transport or await build_transport(settings, clock=clock)

    payments_db = Database(settings.payments_database_url)
    orders_db = Database(settings.orders_database_url)
    try:
        for schema in {role.database for role in check_schema}:
            await ensure_current(payments_db if schema is Schema.PAYMENTS else orders_db, schema)
    except BaseException:
        await payments_db.dispose()
        await orders_db.dispose()
        for client in clients:
            await client.aclose()
        raise

    p_uow = SqlPaymentsUnitOfWork(payments_db, clock)
    o_uow = SqlOrdersUnitOfWork(orders_db, clock)
    wake_processor, p_wake_relay, o_wake_relay = asyncio.Event(), asyncio.Event(), asyncio.Event()
    wake_refunder = asyncio.Event()
    notification_log = SqlNotificationLog(payments_db)

    def relay(store: OutboxRelayStore, name: str) -> OutboxRelay:
        return OutboxRelay(
            store=store,
            transport=transport,
            clock=clock,
            faults=faults,
            retry=retry,
            rng=rng,
            failure_log=failure_log,
            name=name,
            batch_size=settings.relay_batch_size,
            lease=lease,
        )

    payments = PaymentsSide(
        db=payments_db,
        uow=p_uow,
        notification_log=notification_log,
        ingest=WebhookIngest(
            provider=gateway.provider,
            secrets=settings.webhook_secret_list,
            log=notification_log,
            clock=clock,
            faults=faults,
            on_recorded=wake_processor.set,
            max_body_bytes=settings.webhook_max_body_bytes,
            ipn_window=timedelta(seconds=settings.ipn_window_seconds),
            ts_tolerance=timedelta(seconds=settings.webhook_ts_tolerance_seconds),
        ),
        processor=PaymentProcessor(
            uow=p_uow,
            queue=SqlNotificationQueue(payments_db),
            gateway=gateway,
            clock=clock,
            faults=faults,
            retry=retry,
            rng=rng,
            failure_log=failure_log,
            batch_size=settings.processor_batch_size,
            lease=lease,
            fetch_interval=timedelta(seconds=settings.payment_fetch_interval_seconds),
            on_committed=p_wake_relay,
        ),
        relay=relay(p_uow.relay_store, Role.PAYMENTS_RELAY.value),
        outcomes=OrderOutcomeConsumer(
            uow=p_uow,
            clock=clock,
            faults=faults,
            mismatch_policy=settings.amount_mismatch_policy,
            on_refund_requested=wake_refunder,
            failure_log=failure_log,
        ),
        checkout=CheckoutService(
            uow=p_uow, gateway=gateway, clock=clock, notification_url=settings.notification_url
        ),
        refunder=Refunder(
            queue=SqlRefundQueue(payments_db),
            uow=p_uow,
            gateway=gateway,
            clock=clock,
            faults=faults,
            retry=retry,
            rng=rng,
            failure_log=failure_log,
            lease=lease,
        ),
        reconciler=Reconciler(
            store=SqlReconciliationStore(payments_db),
            notifications=notification_log,
            gateway=gateway,
            clock=clock,
            policy=settings.reconcile_policy(),
        ),
        wake_processor=wake_processor,
        wake_relay=p_wake_relay,
        wake_refunder=wake_refunder,
    )
    orders = OrdersSide(
        db=orders_db,
        uow=o_uow,
        relay=relay(o_uow.relay_store, Role.ORDERS_RELAY.value),
        consumer=PaymentEventConsumer(
            uow=o_uow, clock=clock, faults=faults, on_committed=o_wake_relay,
            failure_log=failure_log,
        ),
        service=OrderService(uow=o_uow, payments=payments_client, clock=clock),
        wake_relay=o_wake_relay,
    )
    dead_letters = SqlDeadLetterBox(payments=payments_db, orders=orders_db, clock=clock)
    return System(settings, faults, transport, payments, orders, dead_letters, clients, clock)


async def migrate(settings: Settings) -> None:
    """What `payrelay migrate` does: both databases to head."""
    for url, schema in (
        (settings.payments_database_url, Schema.PAYMENTS),
        (settings.orders_database_url, Schema.ORDERS),
    ):
        db = Database(url)
        try:
            await upgrade(db, schema)
        finally:
            await db.dispose()


async def migrate_check(settings: Settings) -> tuple[Database, Database]:
    """Both databases, checked to be at this code's schema (for one-off commands)."""
    payments, orders = Database(settings.payments_database_url), Database(
        settings.orders_database_url
    )
    try:
        await ensure_current(payments, Schema.PAYMENTS)
        await ensure_current(orders, Schema.ORDERS)
    except BaseException:
        await payments.dispose()
        await orders.dispose()
        raise
    return payments, orders


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
        url,
        prefetch=settings.consumer_prefetch,
        name_prefix=settings.broker_name_prefix,
        retry_delays=settings.consumer_retry_schedule().delays,
    )
    await transport.connect()
    return transport
