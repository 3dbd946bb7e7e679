"""The whole system in one process on the embedded default: what the demo and tests run.

The payments API's public and internal listeners, the orders API and the gateway simulator
each listen on a loopback port, so every hop a production deployment makes over HTTP is
made over HTTP here too.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payrelay.bootstrap import WORKER_ROLES, Role, System, bootstrap, migrate, utc_now
from payrelay.config import Settings
from payrelay.entrypoints.http_server import EmbeddedServer, base_url, bind_socket
from payrelay.entrypoints.listeners import payments_listeners
from payrelay.entrypoints.orders_api import create_orders_app
from payrelay.entrypoints.rejections import Rejections
from payrelay.faults import Faults
from payrelay.ports import Clock
from payrelay.simulator.app import create_app as create_simulator_app
from payrelay.simulator.faults import SimulatorFaults
from payrelay.simulator.notifier import DeliveryPolicy
from payrelay.simulator.state import GatewaySimulator


@dataclass
class EmbeddedStack:
    system: System
    simulator: GatewaySimulator
    payments_url: str
    """The payments API's public listener: webhooks and health."""
    payments_internal_url: str
    """The payments API's internal listener: checkout (service token), admin, docs."""
    orders_url: str
    simulator_url: str
    settings: Settings
    rejections: Rejections
    """Every request the payments API's listeners refused, counted."""


def embedded_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "payments_database_url": f"sqlite+aiosqlite:///{data_dir / 'payments.db'}",
        "orders_database_url": f"sqlite+aiosqlite:///{data_dir / 'orders.db'}",
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def run_embedded(
    settings: Settings,
    *,
    simulator_faults: SimulatorFaults | None = None,
    faults: Faults | None = None,
    seed: int | None = None,
    roles: Iterable[Role] = WORKER_ROLES,
    approve_delay: float = 0.2,
    delivery: DeliveryPolicy | None = None,
    clock: Clock = utc_now,
) -> AsyncIterator[EmbeddedStack]:
    """Every part on its own loopback port; `clock` is payrelay's (the simulator keeps its own)."""
    payments_sock, internal_sock = bind_socket(), bind_socket()
    orders_sock, simulator_sock = bind_socket(), bind_socket()
    payments_url, internal_url = base_url(payments_sock), base_url(internal_sock)
    orders_url, simulator_url = base_url(orders_sock), base_url(simulator_sock)
    settings = settings.with_own_service_token().model_copy(
        update={
            "gateway_base_url": simulator_url,
            "public_url": payments_url,
            "payments_url": internal_url,
        }
    )
    simulator = GatewaySimulator(
        access_token=settings.gateway_access_token.get_secret_value(),
        webhook_secret=settings.webhook_secret_list()[0],
        faults=simulator_faults,
        approve_delay=approve_delay,
        delivery=delivery,
    )
    await migrate(settings)  # the embedded databases are private to this run
    system = await bootstrap(settings, faults=faults, seed=seed, clock=clock)
    payments = payments_listeners(system, settings)
    orders_app = create_orders_app(system.orders, system.transport)
    try:
        async with (
            simulator,
            EmbeddedServer(create_simulator_app(simulator), sock=simulator_sock),
            payments.server(payments.public, sock=payments_sock),
            payments.server(payments.internal, sock=internal_sock),
            payments.server(orders_app, sock=orders_sock),
        ):
            await system.start_workers(roles)
            yield EmbeddedStack(
                system=system,
                simulator=simulator,
                payments_url=payments_url,
                payments_internal_url=internal_url,
                orders_url=orders_url,
                simulator_url=simulator_url,
                settings=settings,
                rejections=payments.rejections,
            )
    finally:
        await system.close()

