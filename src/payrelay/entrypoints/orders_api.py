"""The reference orders service's HTTP API."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, FastAPI, HTTPException
from pydantic import BaseModel, Field, StringConstraints

from payrelay.adapters.storage.migrations import Schema
from payrelay.domain.errors import Conflict, GatewayError, InvalidMoney, NotFound
from payrelay.domain.money import Money
from payrelay.domain.order import Order
from payrelay.entrypoints.health import database_ready, health_router, transport_ready
from payrelay.entrypoints.http_errors import install_error_handlers
from payrelay.ports import OrderLine, Transport
from payrelay.system import OrdersSide

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Item(BaseModel):
    sku: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    quantity: int = Field(gt=0, le=10_000)
    unit_price: Decimal = Field(ge=0)


class CreateOrder(BaseModel):
    items: list[Item] = Field(min_length=1, max_length=500)
    total: Decimal = Field(gt=0)
    currency: Currency
    description: Annotated[str, StringConstraints(max_length=256)] = ""


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
                OrderLine(i.sku, i.quantity, Money.parse(i.unit_price, body.currency))
                for i in body.items
            ]
            order = await service.create(
                lines=lines,
                total=Money.parse(body.total, body.currency),
                description=body.description,
            )
        except InvalidMoney as exc:
            raise HTTPException(422, str(exc)) from exc
        return OrderView.of(order)

    @router.get("/orders/{order_id}", response_model=OrderView)
    async def get(order_id: str) -> OrderView:
        try:
            return OrderView.of(await service.get(order_id))
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc

    @router.post("/orders/{order_id}/cancel", response_model=OrderView)
    async def cancel(order_id: str) -> OrderView:
        try:
            return OrderView.of(await service.cancel(order_id))
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except Conflict as exc:
            raise HTTPException(409, str(exc)) from exc

    @router.post("/orders/{order_id}/checkout", response_model=CheckoutView)
    async def checkout(order_id: str) -> CheckoutView:
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
