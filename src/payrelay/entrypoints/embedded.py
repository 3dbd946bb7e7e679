"""The whole system in one process on the embedded default: what the demo and tests run.

The payments API's public and internal listeners, the orders API and the gateway simulator
each listen on a loopback port, so every hop a production deployment makes over HTTP is
made over HTTP here too.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from payrelay.bootstrap import WORKER_ROLES, Role, System, bootstrap, migrate
from payrelay.config import Settings
from payrelay.entrypoints.http_server import EmbeddedServer, base_url, bind_socket
from payrelay.entrypoints.listeners import PaymentsListeners, orders_app, payments_listeners
from payrelay.entrypoints.rejections import Rejections
from payrelay.faults import Faults
from payrelay.ports import Clock, Tracing
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


@dataclass(frozen=True)
class _Sockets:
    """One bound loopback socket per listener, so every URL is known before anything runs."""

    payments: socket.socket = field(default_factory=bind_socket)
    internal: socket.socket = field(default_factory=bind_socket)
    orders: socket.socket = field(default_factory=bind_socket)
    simulator: socket.socket = field(default_factory=bind_socket)

    def settings(self, settings: Settings) -> Settings:
        """`settings`, pointed at these listeners (and with a service token of its own)."""
        return settings.with_own_service_token().model_copy(
            update={
                "gateway_base_url": base_url(self.simulator),
                "public_url": base_url(self.payments),
                "payments_url": base_url(self.internal),
            }
        )


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
    clock: Clock | None = None,
    tracing: Tracing | None = None,
) -> AsyncIterator[EmbeddedStack]:
    """Every part on its own loopback port; `clock` is payrelay's (the simulator keeps its own)."""
    socks = _Sockets()
    settings = socks.settings(settings)
    simulator = GatewaySimulator(
        access_token=settings.gateway_access_token.get_secret_value(),
        webhook_secret=settings.webhook_secret_list()[0],
        faults=simulator_faults,
        approve_delay=approve_delay,
        delivery=delivery,
    )
    await migrate(settings)  # the embedded databases are private to this run
    system = await bootstrap(settings, faults=faults, seed=seed, clock=clock, tracing=tracing)
    try:
        async with _serving(system, simulator, socks) as payments:
            await system.start_workers(roles)
            yield EmbeddedStack(
                system=system,
                simulator=simulator,
                payments_url=base_url(socks.payments),
                payments_internal_url=base_url(socks.internal),
                orders_url=base_url(socks.orders),
                simulator_url=base_url(socks.simulator),
                settings=settings,
                rejections=payments.rejections,
            )
    finally:
        await system.close()


@contextlib.asynccontextmanager
async def _serving(
    system: System, simulator: GatewaySimulator, socks: _Sockets
) -> AsyncIterator[PaymentsListeners]:
    """The simulator and the three payrelay listeners, served until the block ends."""
    payments = payments_listeners(system, system.settings)
    async with (
        simulator,
        EmbeddedServer(create_simulator_app(simulator), sock=socks.simulator),
        payments.server(payments.public, sock=socks.payments),
        payments.server(payments.internal, sock=socks.internal),
        payments.server(orders_app(system), sock=socks.orders),
    ):
        yield payments
