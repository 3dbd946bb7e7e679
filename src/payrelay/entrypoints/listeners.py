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
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp

from payrelay.bootstrap import System
from payrelay.config import Settings
from payrelay.entrypoints.admin_api import admin_router
from payrelay.entrypoints.http_server import EmbeddedServer, ServerLimits
from payrelay.entrypoints.payments_api import create_internal_app, create_public_app
from payrelay.entrypoints.rate_limit import KeyedBuckets
from payrelay.entrypoints.rejections import Rejections

__all__ = ["PaymentsListeners", "payments_listeners"]


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


def admin_page(system: System, settings: Settings) -> APIRouter | None:
    """The admin page (`/admin`, entrypoints/admin_page.py), once the system has its
    `Operations`; None until then, and only the JSON `/admin/dead-letters` endpoints serve.

    MERGER: when `System.operations` exists (the Operations helper's branch), replace the
    body with:

        from payrelay.entrypoints.admin_page import admin_page_router
        return admin_page_router(system.operations, system.dead_letters,
                                 settings.admin_token.get_secret_value)
    """
    return None


def payments_listeners(system: System, settings: Settings) -> PaymentsListeners:
    rejections = Rejections(log_per_second=settings.rejection_log_per_second)
    budget = KeyedBuckets(
        rate=settings.webhook_rejections_per_second,
        burst=settings.webhook_rejection_burst,
        clock=time.monotonic,
    )
    admin = APIRouter()
    admin.include_router(admin_router(system.dead_letters, settings.admin_token.get_secret_value))
    page = admin_page(system, settings)
    if page is not None:
        admin.include_router(page)
    return PaymentsListeners(
        public=create_public_app(
            system.payments, system.transport, budget=budget, rejections=rejections
        ),
        internal=create_internal_app(
            system.payments, system.transport,
            service_token=settings.service_token.get_secret_value, admin=admin,
        ),
        limits=ServerLimits.from_settings(settings),
        rejections=rejections,
        budget=budget,
    )
