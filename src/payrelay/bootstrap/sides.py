"""Each side's services, built over the adapters `bootstrap` opened."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import timedelta

import httpx

from payrelay.adapters.gateways.mercadopago import MercadoPagoGateway
from payrelay.adapters.gateways.wire import AiohttpWire
from payrelay.adapters.payments_client import HttpPaymentsClient
from payrelay.adapters.resources import AdapterResources, HttpClient
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.forgetful_inbox import ForgetfulInboxUnitOfWork
from payrelay.adapters.storage.orders import SqlOrdersUnitOfWork
from payrelay.adapters.storage.payments import SqlNotificationQueue, SqlPaymentsUnitOfWork
from payrelay.adapters.storage.queries import SqlOrdersReadModel, SqlPaymentsReadModel
from payrelay.adapters.storage.reconciliation import SqlReconciliationStore
from payrelay.adapters.storage.refunds import SqlRefundQueue
from payrelay.config import Settings
from payrelay.domain.retry import RetryPolicy
from payrelay.failure_log import FailureLog
from payrelay.faults import Faults
from payrelay.ports import (
    Clock,
    Gateway,
    OrdersUnitOfWork,
    OutboxRelayStore,
    PaymentsClient,
    PaymentsUnitOfWork,
    Tracing,
    Transport,
)
from payrelay.ports.metrics import Metrics
from payrelay.services.checkout import CheckoutService
from payrelay.services.compensate import Refunder
from payrelay.services.consume import OrderOutcomeConsumer, PaymentEventConsumer
from payrelay.services.ingest import WebhookIngest
from payrelay.services.orders import OrderService
from payrelay.services.process import PaymentProcessor
from payrelay.services.reconcile import Reconciler
from payrelay.services.relay import OutboxRelay
from payrelay.system import OrdersSide, PaymentsSide, Role

log = logging.getLogger("payrelay.bootstrap")


@dataclass(frozen=True)
class Shared:
    """What every worker is built with: one clock, fault set, RNG and failure log."""

    settings: Settings
    clock: Clock
    faults: Faults
    rng: random.Random
    failure_log: FailureLog
    retry: RetryPolicy
    transport: Transport
    tracing: Tracing
    metrics: Metrics

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    def relay(self, store: OutboxRelayStore, role: Role) -> OutboxRelay:
        return OutboxRelay(
            store=store, transport=self.transport, clock=self.clock, faults=self.faults,
            retry=self.retry, rng=self.rng, failure_log=self.failure_log, name=role.value,
            batch_size=self.settings.relay_batch_size, lease=self.lease, tracing=self.tracing,
            metrics=self.metrics,
        )


def build_gateway(settings: Settings, clients: list[HttpClient]) -> Gateway:
    wire = AiohttpWire(settings.gateway_base_url, timeout=settings.gateway_timeout_seconds)
    clients.append(wire)
    return MercadoPagoGateway(wire, access_token=settings.gateway_access_token.get_secret_value())


def build_payments_client(
    settings: Settings, clients: list[HttpClient]
) -> PaymentsClient:
    http = httpx.AsyncClient(base_url=settings.payments_url, timeout=10.0)
    clients.append(http)
    return HttpPaymentsClient(http, token=settings.service_token.get_secret_value)


def build_payments_side(
    shared: Shared, gateway: Gateway, resources: AdapterResources
) -> PaymentsSide:
    s, db = shared.settings, resources.payments_db
    uow = SqlPaymentsUnitOfWork(db, shared.clock)
    consumer_uow: PaymentsUnitOfWork = ForgetfulInboxUnitOfWork(uow) if broken(s) else uow
    wake_processor, wake_relay, wake_refunder = asyncio.Event(), asyncio.Event(), asyncio.Event()
    return PaymentsSide(
        reads=SqlPaymentsReadModel(db), uow=uow, notification_log=resources.notification_log,
        ingest=build_ingest(shared, gateway.provider, resources, wake_processor),
        processor=build_processor(shared, gateway, uow, db, wake_relay),
        relay=shared.relay(uow.relay_store, Role.PAYMENTS_RELAY),
        outcomes=OrderOutcomeConsumer(
            uow=consumer_uow, clock=shared.clock, faults=shared.faults,
            mismatch_policy=s.amount_mismatch_policy, on_refund_requested=wake_refunder,
            failure_log=shared.failure_log, tracing=shared.tracing, metrics=shared.metrics,
        ),
        checkout=CheckoutService(
            uow=uow, gateway=gateway, clock=shared.clock, notification_url=s.notification_url
        ),
        refunder=Refunder(
            queue=SqlRefundQueue(db), uow=uow, gateway=gateway, clock=shared.clock,
            faults=shared.faults, retry=shared.retry, rng=shared.rng,
            failure_log=shared.failure_log, lease=shared.lease, metrics=shared.metrics,
        ),
        reconciler=Reconciler(
            store=SqlReconciliationStore(db), notifications=resources.notification_log,
            gateway=gateway, clock=shared.clock, policy=s.reconcile_policy(),
        ),
        wake_processor=wake_processor, wake_relay=wake_relay, wake_refunder=wake_refunder,
    )


def broken(settings: Settings) -> bool:
    """Whether this is the deliberately broken build of a test (see forgetful_inbox.py)."""
    if settings.test_only_forgetful_inbox:
        log.error("PAYRELAY_TEST_ONLY_FORGETFUL_INBOX is set: the consumers' inboxes "
                  "remember nothing and redeliveries are applied twice (a test's broken build)")
    return settings.test_only_forgetful_inbox


def build_ingest(
    shared: Shared, provider: str, resources: AdapterResources, wake: asyncio.Event
) -> WebhookIngest:
    s = shared.settings
    return WebhookIngest(
        provider=provider, secrets=s.webhook_secret_list, log=resources.notification_log,
        clock=shared.clock, faults=shared.faults, on_recorded=wake.set,
        max_body_bytes=s.webhook_max_body_bytes, metrics=shared.metrics,
        ipn_window=timedelta(seconds=s.ipn_window_seconds),
        ts_tolerance=timedelta(seconds=s.webhook_ts_tolerance_seconds), tracing=shared.tracing,
    )


def build_processor(
    shared: Shared, gateway: Gateway, uow: SqlPaymentsUnitOfWork, db: Database,
    wake_relay: asyncio.Event,
) -> PaymentProcessor:
    s = shared.settings
    return PaymentProcessor(
        uow=uow, queue=SqlNotificationQueue(db), gateway=gateway, clock=shared.clock,
        faults=shared.faults, retry=shared.retry, rng=shared.rng,
        failure_log=shared.failure_log, batch_size=s.processor_batch_size, lease=shared.lease,
        fetch_interval=timedelta(seconds=s.payment_fetch_interval_seconds),
        on_committed=wake_relay, tracing=shared.tracing,
    )


def build_orders_side(
    shared: Shared, payments_client: PaymentsClient, db: Database | None
) -> OrdersSide | None:
    if db is None:  # no orders database in this deployment
        return None
    uow = SqlOrdersUnitOfWork(db, shared.clock)
    consumer_uow: OrdersUnitOfWork = (
        ForgetfulInboxUnitOfWork(uow) if broken(shared.settings) else uow
    )
    wake_relay = asyncio.Event()
    return OrdersSide(
        reads=SqlOrdersReadModel(db), uow=uow,
        relay=shared.relay(uow.relay_store, Role.ORDERS_RELAY),
        consumer=PaymentEventConsumer(
            uow=consumer_uow, clock=shared.clock, faults=shared.faults, on_committed=wake_relay,
            failure_log=shared.failure_log, tracing=shared.tracing, metrics=shared.metrics,
        ),
        service=OrderService(uow=uow, payments=payments_client, clock=shared.clock),
        wake_relay=wake_relay,
    )
