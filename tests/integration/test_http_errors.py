"""A database that cannot be reached is `503 {"error": ...}` on every route, never a 500."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from payrelay.bootstrap import System, bootstrap
from payrelay.entrypoints.admin_api import admin_router
from payrelay.entrypoints.embedded import embedded_settings
from payrelay.entrypoints.http_errors import HANDLERS
from payrelay.entrypoints.http_server import EmbeddedServer
from payrelay.entrypoints.orders_api import create_orders_app
from payrelay.entrypoints.payments_api import create_internal_app, create_public_app
from payrelay.entrypoints.rate_limit import KeyedBuckets
from payrelay.entrypoints.rejections import Rejections
from tests.support import FAST

PASSWORD = "s3cret-pw"
ADMIN = {"authorization": "Bearer admin-token"}
SERVICE = {"authorization": "Bearer service-token"}
ORDER = {"items": [{"sku": "A", "quantity": 1, "unit_price": "5"}], "total": "5",
         "currency": "BRL"}

ORDERS_ROUTES = [
    ("POST", "/orders", {"json": ORDER}),
    ("GET", "/orders/o-1", {}),
    ("POST", "/orders/o-1/cancel", {}),
    ("POST", "/orders/o-1/checkout", {}),
]
PUBLIC_ROUTES = [
    ("POST", "/webhooks/mercadopago", {"params": {"topic": "payment", "id": "123"}}),
]
INTERNAL_ROUTES = [
    ("POST", "/checkout", {"headers": SERVICE,
                           "json": {"order_id": "o-1", "amount": "5", "currency": "BRL"}}),
    ("GET", "/admin/dead-letters", {"headers": ADMIN}),
    ("GET", "/admin/dead-letters/payments-1", {"headers": ADMIN}),
    ("POST", "/admin/dead-letters/replay", {"headers": ADMIN, "json": {"all": True}}),
    ("DELETE", "/admin/dead-letters/payments-1", {"headers": ADMIN}),
]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql+asyncpg://payrelay:{PASSWORD}@127.0.0.1:{port}/payrelay"


@contextlib.asynccontextmanager
async def system_without_databases(tmp_path: Path) -> AsyncIterator[System]:
    """Both databases at a closed port; nothing connects until a request needs them."""
    url = closed_port_url()
    settings = embedded_settings(tmp_path, payments_database_url=url, orders_database_url=url,
                                 admin_token="admin-token", **FAST)
    system = await bootstrap(settings, check_schema=())
    try:
        yield system
    finally:
        await system.close()


def public_app(system: System) -> FastAPI:
    budget = KeyedBuckets(rate=1, burst=20, clock=time.monotonic)
    return create_public_app(system.payments, system.transport, budget=budget,
                             rejections=Rejections())


async def answers(app: FastAPI, routes: list[tuple[str, str, dict[str, object]]]
                  ) -> list[httpx.Response]:
    async with EmbeddedServer(app) as server, httpx.AsyncClient(timeout=10) as http:
        return [await http.request(method, server.base_url + path, **kw)  # type: ignore[arg-type]
                for method, path, kw in routes]


def assert_503_without_traceback(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.request.url, response.text)
    assert set(response.json()) == {"error"}
    for leak in ("Traceback", "File ", PASSWORD, "127.0.0.1"):
        assert leak not in response.text


async def test_orders_api_answers_503_on_every_route_while_its_database_is_down(tmp_path):
    async with system_without_databases(tmp_path) as system:
        app = create_orders_app(system.orders, system.transport)
        for response in await answers(app, ORDERS_ROUTES):
            assert_503_without_traceback(response)


async def test_payments_api_answers_503_on_every_route_while_its_database_is_down(tmp_path):
    async with system_without_databases(tmp_path) as system:
        admin = admin_router(system.dead_letters, lambda: "admin-token")
        internal = create_internal_app(system.payments, system.transport,
                                       service_token=lambda: "service-token", admin=admin)
        for response in [*await answers(public_app(system), PUBLIC_ROUTES),
                         *await answers(internal, INTERNAL_ROUTES)]:
            assert_503_without_traceback(response)


@pytest.mark.parametrize("side", ["payments", "orders"])
async def test_readiness_says_not_ready_while_the_database_is_down(tmp_path, side: str):
    async with system_without_databases(tmp_path) as system:
        app = (public_app(system) if side == "payments"
               else create_orders_app(system.orders, system.transport))
        (ready,) = await answers(app, [("GET", "/readyz", {})])
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("unavailable: StorageUnavailable")


async def test_every_app_answers_each_payrelay_error_through_the_same_handlers(tmp_path):
    """One table (http_errors.HANDLERS), installed on all three apps: no app misses one."""
    async with system_without_databases(tmp_path) as system:
        apps = {
            "public": public_app(system),
            "internal": create_internal_app(system.payments, system.transport,
                                            service_token=lambda: "service-token"),
            "orders": create_orders_app(system.orders, system.transport),
        }
        for name, app in apps.items():
            for error, handler in HANDLERS.items():
                assert app.exception_handlers.get(error) is handler, (name, error)
