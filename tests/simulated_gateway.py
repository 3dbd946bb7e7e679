"""The simulator's app behind payrelay's MercadoPago adapter, in process (no sockets).

Requests go through httpx.ASGITransport; `Wire` counts them and can fail chosen ones, the
way a network would, so the adapter's error translation is what a test sees.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from payrelay.adapters.gateways.mercadopago import MercadoPagoGateway
from payrelay.adapters.gateways.wire import HttpxWire
from payrelay.simulator import GatewaySimulator, create_app

TOKEN = "unit-gateway-token"


class ManualClock:
    """A clock that moves only when the test says so."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 23, 14, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Wire(httpx.AsyncBaseTransport):
    """Passes requests to the app; the ones numbered in `cut` (from 1) never arrive."""

    inner: httpx.AsyncBaseTransport
    cut: set[int] = field(default_factory=set)
    requests: list[httpx.Request] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.requests) in self.cut:
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


@dataclass
class SimulatedGateway:
    simulator: GatewaySimulator
    gateway: MercadoPagoGateway
    wire: Wire
    clock: ManualClock

    def checkout(self, order_id: str, price: str = "10.00") -> str:
        """A preference without a notification URL: these tests read, nobody is notified."""
        item = {"title": "Mate", "quantity": 1, "unit_price": price, "currency_id": "BRL"}
        preference = self.simulator.create_preference(
            {"items": [item], "external_reference": order_id}
        )
        return str(preference["id"])


@contextlib.asynccontextmanager
async def simulated_gateway(
    *, search_page_size: int = 100, clock: ManualClock | None = None
) -> AsyncIterator[SimulatedGateway]:
    """`async with simulated_gateway() as mp:` a simulator on a manual clock, and the adapter."""
    clock = clock or ManualClock()
    simulator = GatewaySimulator(access_token=TOKEN, webhook_secret="unused", clock=clock)
    wire = Wire(httpx.ASGITransport(app=create_app(simulator)))
    async with httpx.AsyncClient(transport=wire, base_url="http://mercadopago.test") as client:
        gateway = MercadoPagoGateway(
            HttpxWire(client), access_token=TOKEN, search_page_size=search_page_size
        )
        yield SimulatedGateway(simulator, gateway, wire, clock)
