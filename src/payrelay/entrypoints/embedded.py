"""The whole system in one process on the embedded default: what the demo and tests run.

Payments API, orders API and the gateway simulator each listen on a loopback port, so
every hop a production deployment makes over HTTP is made over HTTP here too.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payrelay.bootstrap import WORKER_ROLES, Role, System, bootstrap, migrate, utc_now
from payrelay.config import Settings
from payrelay.entrypoints.admin_api import admin_router
from payrelay.entrypoints.http_server import EmbeddedServer, base_url, bind_socket
from payrelay.entrypoints.orders_api import create_orders_app
from payrelay.entrypoints.payments_api import create_payments_app
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
    orders_url: str
    simulator_url: str
    settings: Settings


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
    payments_sock, orders_sock, simulator_sock = bind_socket(), bind_socket(), bind_socket()
    payments_url, orders_url = base_url(payments_sock), base_url(orders_sock)
    simulator_url = base_url(simulator_sock)
    settings = settings.model_copy(
        update={
            "gateway_base_url": simulator_url,
            "public_url": payments_url,
            "payments_url": payments_url,
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
    admin = admin_router(system.dead_letters, settings.admin_token.get_secret_value)
    payments_app = create_payments_app(system.payments, system.transport, admin=admin)
    orders_app = create_orders_app(system.orders, system.transport)
    try:
        async with (
            simulator,
            EmbeddedServer(create_simulator_app(simulator), sock=simulator_sock),
            EmbeddedServer(payments_app, sock=payments_sock),
            EmbeddedServer(orders_app, sock=orders_sock),
        ):
            await system.start_workers(roles)
            yield EmbeddedStack(
                system, simulator, payments_url, orders_url, simulator_url, settings
            )
    finally:
        await system.close()
