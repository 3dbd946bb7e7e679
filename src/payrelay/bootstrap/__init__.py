"""The one place where adapters are chosen and wired; nothing is built at import time.

Entrypoints get everything they need from adapters through this package: a `System` of
services, ports and read models (`bootstrap`), and a few functions for one-off commands
(migrations, dead letters, the demo's scratch databases and broker topology).
`sides.py` builds each side's services, `transport.py` the broker.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from payrelay.adapters.metrics import TimedGateway, prometheus_metrics
from payrelay.adapters.resources import AdapterResources
from payrelay.adapters.storage.dead_letters import SqlDeadLetterBox
from payrelay.adapters.storage.migrations import Schema, ensure_current
from payrelay.adapters.storage.operations import open_operations, operations_for
from payrelay.adapters.storage.provision import scratch_databases
from payrelay.adapters.tracing import tracing_for
from payrelay.bootstrap.sides import (
    Shared,
    build_gateway,
    build_orders_side,
    build_payments_client,
    build_payments_side,
)
from payrelay.bootstrap.transport import build_transport
from payrelay.commands import (
    database_url,
    dead_letter_box,
    delete_broker_topology,
    migrate,
    utc_now,
)
from payrelay.config import Settings
from payrelay.failure_log import FailureLog
from payrelay.faults import Faults
from payrelay.ports import (
    Clock,
    Gateway,
    Heartbeats,
    Operations,
    PaymentsClient,
    Tracing,
    Transport,
    Wakeups,
)
from payrelay.system import WORKER_ROLES, Role, Side, System, subscriptions_for

__all__ = [
    "WORKER_ROLES", "AdapterResources", "Role", "Side", "System", "adapter_resources", "bootstrap",
    "build_transport", "dead_letter_box", "delete_broker_topology", "migrate",
    "open_operations", "scratch_databases", "utc_now",
]


def adapter_resources(system: System) -> AdapterResources:
    """The databases and HTTP clients behind a System that `bootstrap` built."""
    if not isinstance(system.resources, AdapterResources):
        raise TypeError("this System was not built by bootstrap()")
    return system.resources


async def bootstrap(
    settings: Settings,
    *,
    gateway: Gateway | None = None,
    transport: Transport | None = None,
    payments_client: PaymentsClient | None = None,
    faults: Faults | None = None,
    clock: Clock | None = None,
    seed: int | None = None,
    check_schema: Iterable[Role] = tuple(Role),
    tracing: Tracing | None = None,
    roles: Iterable[Role] | None = None,
) -> System:
    """Every component from settings; overrides replace the adapters they name. `roles`
    (default: any) decide what is opened: no orders database for payments-side roles
    alone, only the queues they consume; no `clock`: the database server's."""
    wanted = set(Role) if roles is None else set(roles)
    resources = _open(settings, wanted, named=roles is not None)
    try:
        await _check_schemas(resources, check_schema)  # its errors first: they say the fix
        clock = clock or await resources.start_server_clock()
        metrics = prometheus_metrics(resources, clock)
        transport = transport or await build_transport(
            settings, clock=clock, subscriptions=subscriptions_for(wanted), metrics=metrics)
    except BaseException:
        await resources.close()
        raise
    gateway = gateway or build_gateway(settings, resources.http_clients)
    payments_client = payments_client or build_payments_client(settings, resources.http_clients)
    shared = Shared(
        settings, clock, faults or Faults(), random.Random(seed),
        FailureLog(clock, metrics=metrics), settings.retry_policy(), transport,
        tracing or tracing_for(settings), metrics,
    )
    payments = build_payments_side(shared, TimedGateway(gateway, metrics), resources)
    orders = build_orders_side(shared, payments_client, resources.orders_db)
    return System(settings, shared.faults, transport, payments, orders,
                  *_after_the_sides(resources, clock, settings), metrics)


def _after_the_sides(
    resources: AdapterResources, clock: Clock, settings: Settings
) -> tuple[SqlDeadLetterBox, AdapterResources, Clock, Wakeups, Operations, Heartbeats]:
    """The System's fields after its two sides, in order: dead letters to operations."""
    dead_letters = SqlDeadLetterBox(payments=resources.payments_db, orders=resources.orders_db,
                                    clock=clock)
    operations, heartbeats = operations_for(resources, clock, settings.heartbeat_interval_seconds)
    return dead_letters, resources, clock, resources.wakeups, operations, heartbeats


def _open(settings: Settings, roles: set[Role], *, named: bool) -> AdapterResources:
    """The databases `roles` work on; the orders one is required if they were `named`."""
    orders_url = None
    if any(r.side is Side.ORDERS for r in roles):
        orders_url = database_url(settings, Side.ORDERS, required=named)
    return AdapterResources.open(payments_url=settings.payments_database_url, orders_url=orders_url)


async def _check_schemas(resources: AdapterResources, roles: Iterable[Role]) -> None:
    """Each opened database that one of `roles` works on is at this code's schema."""
    for side in {role.side for role in roles}:
        db = resources.orders_db if side is Side.ORDERS else resources.payments_db
        if db is not None:  # no orders database: nothing there to check
            await ensure_current(db, Schema(side.value))
