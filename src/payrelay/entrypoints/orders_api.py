"""The reference orders service's HTTP API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from payrelay.adapters.storage.migrations import Schema
from payrelay.domain.errors import Conflict, GatewayError, InvalidMoney, NotFound
from payrelay.domain.money import Money
from payrelay.domain.order import Order
from payrelay.entrypoints.api_fields import AmountText, CurrencyCode, Description, OrderId, Sku
from payrelay.entrypoints.health import database_ready, health_router, transport_ready
from payrelay.entrypoints.http_errors import install_error_handlers
from payrelay.ports import OrderLine, Transport
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
    """The orders API; a database it cannot reach is 503 on every route."""
    app = FastAPI(title="payrelay orders", version="1")
    install_error_handlers(app)
    app.include_router(_routes(side))
    app.include_router(
        health_router(
            {
                "database": database_ready(side.db, Schema.ORDERS),
                "transport": transport_ready(transport),
            }
        )
    )
    return app


def _routes(side: OrdersSide) -> APIRouter:
    router = APIRouter()
    service = side.service

    @router.post("/orders", response_model=OrderView, status_code=201)
    async def create(body: CreateOrder) -> OrderView:
        try:
            lines = [
                OrderLine(i.sku, i.quantity, Money.parse_requested(i.unit_price, body.currency))
                for i in body.items
            ]
            order = await service.create(
                lines=lines,
                total=Money.parse_requested(body.total, body.currency),
                description=body.description,
            )
        except InvalidMoney as exc:
            raise HTTPException(422, str(exc)) from exc
        return OrderView.of(order)

    @router.get("/orders/{order_id}", response_model=OrderView)
    async def get(order_id: OrderIdPath) -> OrderView:
        try:
            return OrderView.of(await service.get(order_id))
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc

    @router.post("/orders/{order_id}/cancel", response_model=OrderView)
    async def cancel(order_id: OrderIdPath) -> OrderView:
        try:
            return OrderView.of(await service.cancel(order_id))
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except Conflict as exc:
            raise HTTPException(409, str(exc)) from exc

    @router.post("/orders/{order_id}/checkout", response_model=CheckoutView)
    async def checkout(order_id: OrderIdPath) -> CheckoutView:
        try:
            result = await service.checkout(order_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except Conflict as exc:
            raise HTTPException(409, str(exc)) from exc
        except GatewayError as exc:
            raise HTTPException(502, str(exc)) from exc
        return CheckoutView(
            order_id=result.order_id,
            preference_id=result.preference_id,
            init_point=result.init_point,
        )

    return router
