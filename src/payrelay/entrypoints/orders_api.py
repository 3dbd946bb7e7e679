"""The reference orders service's HTTP API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, FastAPI, Path
from pydantic import BaseModel, ConfigDict, Field

from payrelay.domain.money import Money
from payrelay.domain.order import Order
from payrelay.entrypoints.api_fields import AmountText, CurrencyCode, Description, OrderId, Sku
from payrelay.entrypoints.health import health_router
from payrelay.entrypoints.http_errors import install_error_handlers
from payrelay.entrypoints.telemetry import NO_TELEMETRY
from payrelay.ports import OrderLine, Transport
from payrelay.services.orders import OrderService
from payrelay.system import OrdersSide

# A path id no order can have (too long, non-ASCII) is a 422 before storage is asked.
OrderIdPath = Annotated[OrderId, Path()]


class Item(BaseModel):
    sku: Sku
    quantity: int = Field(gt=0, le=10_000)
    unit_price: AmountText
    """Decimal text ("12.50"), never a JSON number."""


class CreateOrder(BaseModel):
    """Amounts are decimal text ("25.00"), never JSON numbers; see api_fields."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [{"sku": "MUG", "quantity": 2, "unit_price": "12.50"}], "total": "25.00",
         "currency": "BRL"},
    ]})

    items: list[Item] = Field(min_length=1, max_length=500)
    total: AmountText
    currency: CurrencyCode
    description: Description = ""


class OrderView(BaseModel):
    order_id: str
    status: str
    total: str
    currency: str
    paid_by: str | None
    version: int
    review_reason: str | None = None  # why a person must look (status needs_review)

    @classmethod
    def of(cls, order: Order) -> OrderView:
        return cls(
            order_id=order.order_id,
            status=order.status.value,
            total=str(order.total.amount),
            currency=order.total.currency,
            paid_by=order.paid_by,
            version=order.version,
            review_reason=order.review_reason.value if order.review_reason else None,
        )


class CheckoutView(BaseModel):
    order_id: str
    preference_id: str
    init_point: str


def create_orders_app(side: OrdersSide, transport: Transport) -> FastAPI:
    """The orders API; a database it cannot reach is 503 on every route.

    Its errors are answered by the shared handlers (http_errors): InvalidMoney 422,
    NotFound 404, Conflict 409, a payments service or gateway failure 502.
    """
    app = FastAPI(title="payrelay orders", version="1", telemetry=NO_TELEMETRY)
    install_error_handlers(app)
    app.include_router(_routes(side.service))
    app.include_router(health_router({"database": side.reads.check, "transport": transport.check}))
    return app


def _routes(service: OrderService) -> APIRouter:
    router = APIRouter()
    router.add_api_route(
        "/orders", _create(service), methods=["POST"], response_model=OrderView, status_code=201
    )
    router.add_api_route("/orders/{order_id}", _get(service), response_model=OrderView)
    router.add_api_route(
        "/orders/{order_id}/cancel", _cancel(service), methods=["POST"], response_model=OrderView
    )
    router.add_api_route(
        "/orders/{order_id}/checkout", _checkout(service), methods=["POST"],
        response_model=CheckoutView,
    )
    return router


def _create(service: OrderService) -> Callable[[CreateOrder], Awaitable[OrderView]]:
    async def create(body: CreateOrder) -> OrderView:
        lines = [
            OrderLine(i.sku, i.quantity, Money.parse_requested(i.unit_price, body.currency))
            for i in body.items
        ]
        order = await service.create(
            lines=lines,
            total=Money.parse_requested(body.total, body.currency),
            description=body.description,
        )
        return OrderView.of(order)

    return create


def _get(service: OrderService) -> Callable[[str], Awaitable[OrderView]]:
    async def get(order_id: OrderIdPath) -> OrderView:
        return OrderView.of(await service.get(order_id))

    return get


def _cancel(service: OrderService) -> Callable[[str], Awaitable[OrderView]]:
    async def cancel(order_id: OrderIdPath) -> OrderView:
        return OrderView.of(await service.cancel(order_id))

    return cancel


def _checkout(service: OrderService) -> Callable[[str], Awaitable[CheckoutView]]:
    async def checkout(order_id: OrderIdPath) -> CheckoutView:
        result = await service.checkout(order_id)
        return CheckoutView(
            order_id=result.order_id,
            preference_id=result.preference_id,
            init_point=result.init_point,
        )

    return checkout
