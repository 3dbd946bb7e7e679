"""The payments API's two listeners, and the limits every payrelay listener serves under.

The public listener is what the internet reaches: the gateway's webhooks and health,
nothing else. The internal listener serves `/checkout` (behind the service token),
`/admin` (behind the admin token) and the API docs, and belongs on the shop's private
network. Both, and the orders API, share one `Rejections`, so every refusal in the process
is counted in one place.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp

from payrelay.bootstrap import Role, System
from payrelay.config import Settings
from payrelay.entrypoints.admin_api import admin_router
from payrelay.entrypoints.admin_page import admin_page_router
from payrelay.entrypoints.health import ReadinessCheck, health_router, metrics_router
from payrelay.entrypoints.http_server import EmbeddedServer, ServerLimits
from payrelay.entrypoints.ops_api import ops_router
from payrelay.entrypoints.orders_api import create_orders_app
from payrelay.entrypoints.payments_api import create_internal_app, create_public_app
from payrelay.entrypoints.rate_limit import KeyedBuckets
from payrelay.entrypoints.rejections import Rejections
from payrelay.system import Side

__all__ = ["PaymentsListeners", "orders_app", "payments_listeners", "worker_app"]


@dataclass(frozen=True)
class PaymentsListeners:
    public: FastAPI
    internal: FastAPI
    limits: ServerLimits
    rejections: Rejections
    budget: KeyedBuckets
    """Each client's allowance of rejected requests on the public listener."""

    def server(
        self, app: ASGIApp, *, sock: socket.socket | None = None, host: str = "127.0.0.1",
        port: int = 0,
    ) -> EmbeddedServer:
        """`app` served under these limits, its refusals counted in `rejections`; the
        public app also under the per-client budget (its connections too)."""
        return EmbeddedServer(
            app, sock=sock, host=host, port=port, limits=self.limits, rejections=self.rejections,
            budget=self.budget if app is self.public else None,
        )


def payments_listeners(system: System, settings: Settings) -> PaymentsListeners:
    rejections = Rejections(log_per_second=settings.rejection_log_per_second)
    budget = KeyedBuckets(
        rate=settings.webhook_rejections_per_second,
        burst=settings.webhook_rejection_burst,
        clock=time.monotonic,
    )
    admin = APIRouter()  # all under /admin, each behind the admin token
    admin.include_router(admin_router(system.dead_letters, settings.admin_token.get_secret_value))
    admin.include_router(ops_router(system.operations, settings.admin_token.get_secret_value))
    admin.include_router(admin_page_router(system.operations, system.dead_letters,
                                           settings.admin_token.get_secret_value))
    internal = create_internal_app(
        system.payments, system.transport,
        service_token=settings.service_token.get_secret_value, admin=admin,
    )
    internal.include_router(metrics_router(system.metrics))  # the private network only
    return PaymentsListeners(
        public=create_public_app(
            system.payments, system.transport, budget=budget, rejections=rejections
        ),
        internal=internal,
        limits=ServerLimits.from_settings(settings),
        rejections=rejections,
        budget=budget,
    )


def orders_app(system: System) -> FastAPI:
    """The orders API, with this process's `/metrics`."""
    app = create_orders_app(system.orders, system.transport)
    app.include_router(metrics_router(system.metrics))
    return app


def worker_app(system: System, roles: Iterable[Role]) -> FastAPI:
    """What a process serves on its metrics port (a worker-only one has no other listener):
    /healthz, /readyz (the databases its roles use, the transport) and /metrics."""
    sides = {role.side for role in roles}
    checks: dict[str, ReadinessCheck] = {"transport": system.transport.check}
    if Side.PAYMENTS in sides:
        checks["payments database"] = system.payments.reads.check
    if Side.ORDERS in sides:
        checks["orders database"] = system.orders.reads.check
    app = FastAPI(title="payrelay worker", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(health_router(checks))
    app.include_router(metrics_router(system.metrics))
    return app
