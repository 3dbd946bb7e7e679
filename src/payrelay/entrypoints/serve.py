"""`payrelay serve`: one process running any mix of roles, until SIGTERM or SIGINT.

Shutdown is graceful: the HTTP servers stop accepting and finish their requests, worker
loops finish the step they are in, consumers finish (and ack) their batch, and leased rows
that were not finished fall due again for another process when their lease ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterable
from dataclasses import dataclass

from payrelay.bootstrap import Role, System, bootstrap
from payrelay.config import Settings
from payrelay.entrypoints.listeners import orders_app, payments_listeners, worker_app

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Binding:
    """Where the APIs listen."""

    host: str = "127.0.0.1"
    payments_port: int = 8000
    orders_port: int = 8001
    payments_internal_port: int = 8002
    payments_internal_host: str | None = None
    metrics_port: int | None = None
    """/healthz, /readyz and /metrics on a port of their own (for worker-only processes)."""


async def serve(
    settings: Settings,
    roles: Iterable[Role],
    *,
    host: str = "127.0.0.1",
    payments_port: int = 8000,
    orders_port: int = 8001,
    payments_internal_port: int = 8002,
    payments_internal_host: str | None = None,
    metrics_port: int | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    roles = frozenset(roles)
    _refuse_split_local_roles(settings, roles)
    settings = _service_token_for(settings, roles)
    binding = _Binding(host, payments_port, orders_port, payments_internal_port,
                      payments_internal_host, metrics_port or settings.metrics_port)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    system = await bootstrap(settings, check_schema=roles, roles=roles)
    try:
        async with contextlib.AsyncExitStack() as servers:
            await _start_apis(servers, system, roles, binding)
            await system.start_workers(roles)
            log.info("serving roles: %s", ", ".join(sorted(roles)))
            await stop.wait()
            log.info("stopping: finishing in-flight work")
    finally:
        await system.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _refuse_split_local_roles(settings: Settings, roles: frozenset[Role]) -> None:
    if settings.broker_url.get_secret_value() == "local" and roles != frozenset(Role):
        # In-process delivery reaches only consumers in this process: a split deployment on
        # the local transport would leave every message unroutable, retried forever.
        raise ValueError(
            "PAYRELAY_BROKER_URL=local runs every role in one process: use --role all, "
            "or set PAYRELAY_BROKER_URL to an amqp:// URL to split roles across processes"
        )


async def _start_apis(
    servers: contextlib.AsyncExitStack, system: System, roles: frozenset[Role], at: _Binding
) -> None:
    """Start the HTTP listeners of the API roles in `roles`; `servers` stops them."""
    listeners = payments_listeners(system, system.settings)
    if Role.PAYMENTS_API in roles:
        server = await servers.enter_async_context(
            listeners.server(listeners.public, host=at.host, port=at.payments_port)
        )
        log.info("payments API (public: webhooks) on %s", server.base_url)
        server = await servers.enter_async_context(
            listeners.server(
                listeners.internal, host=at.payments_internal_host or at.host,
                port=at.payments_internal_port,
            )
        )
        log.info("payments API (internal: checkout, admin, metrics) on %s", server.base_url)
    if Role.ORDERS_API in roles:
        server = await servers.enter_async_context(
            listeners.server(orders_app(system), host=at.host, port=at.orders_port)
        )
        log.info("orders API on %s", server.base_url)
    if at.metrics_port is not None:
        server = await servers.enter_async_context(listeners.server(
            worker_app(system, roles), host=at.host, port=at.metrics_port
        ))
        log.info("health and metrics on %s", server.base_url)


def _service_token_for(settings: Settings, roles: frozenset[Role]) -> Settings:
    """The settings this process serves with: a process running both APIs needs no token."""
    apis = roles & {Role.PAYMENTS_API, Role.ORDERS_API}
    if apis == {Role.PAYMENTS_API, Role.ORDERS_API}:
        return settings.with_own_service_token()
    if apis and not settings.service_token.get_secret_value():
        log.warning(
            "PAYRELAY_SERVICE_TOKEN is empty: the payments API's /checkout refuses every "
            "call (401), so the orders API cannot create checkouts"
        )
    return settings
