"""The payments service's two HTTP faces, each on its own listener.

The public app serves the gateway's webhooks (and health) to the internet; the internal app
serves checkout links to the orders service, the admin endpoints and the API docs, and
must be reachable only from the shop's own network.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel, ConfigDict

from payrelay.domain.errors import InvalidMoney
from payrelay.domain.money import Money
from payrelay.entrypoints.api_fields import AmountText, CurrencyCode, Description, OrderId
from payrelay.entrypoints.auth import require_bearer
from payrelay.entrypoints.health import health_router
from payrelay.entrypoints.http_errors import install_error_handlers
from payrelay.entrypoints.http_guard import RejectionBudget
from payrelay.entrypoints.rate_limit import KeyedBuckets
from payrelay.entrypoints.rejections import Rejections
from payrelay.entrypoints.telemetry import NO_TELEMETRY
from payrelay.entrypoints.webhook_endpoint import webhook_route
from payrelay.ports import Transport
from payrelay.system import PaymentsSide


class CheckoutRequest(BaseModel):
    """`amount` is decimal text ("10.50"), never a JSON number; see api_fields."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"order_id": "shop-1042", "amount": "99.90", "currency": "BRL",
         "description": "order shop-1042"},
    ]})

    order_id: OrderId
    amount: AmountText
    currency: CurrencyCode
    description: Description = ""


class CheckoutResponse(BaseModel):
    order_id: str
    provider: str
    preference_id: str
    init_point: str
    amount: str
    currency: str


def create_public_app(
    side: PaymentsSide, transport: Transport, *, budget: KeyedBuckets, rejections: Rejections
) -> FastAPI:
    """What the gateway (the internet) reaches: the webhook routes and health, nothing else.

    No checkout, no admin, no OpenAPI document: an unknown path is 404. Each client's
    rejected requests spend its `budget`; every rejection is recorded in `rejections`.
    """
    app = FastAPI(
        title="payrelay payments (public)", version="1",
        docs_url=None, redoc_url=None, openapi_url=None, telemetry=NO_TELEMETRY,
    )
    install_error_handlers(app)
    app.router.routes.append(webhook_route("/webhooks/mercadopago", side.ingest))
    app.include_router(_health(side, transport))
    app.add_middleware(RejectionBudget, budget=budget, rejections=rejections)
    return app


def create_internal_app(
    side: PaymentsSide,
    transport: Transport,
    *,
    service_token: Callable[[], str],
    admin: APIRouter | None = None,
) -> FastAPI:
    """What only the shop's own services reach: `/checkout` (behind the service token),
    `/admin` (if given, behind its own token), `/docs` and health."""
    app = FastAPI(title="payrelay payments (internal)", version="1", telemetry=NO_TELEMETRY)
    install_error_handlers(app)
    checkout = Depends(require_bearer(service_token, name="service token"))
    app.include_router(_checkout_routes(side), dependencies=[checkout])
    if admin is not None:
        app.include_router(admin)
    app.include_router(_health(side, transport))
    return app


def _health(side: PaymentsSide, transport: Transport) -> APIRouter:
    """A database it cannot reach is 503 everywhere, and `/readyz` says so."""
    return health_router({"database": side.reads.check, "transport": transport.check})


def _checkout_routes(side: PaymentsSide) -> APIRouter:
    router = APIRouter()

    @router.post("/checkout", response_model=CheckoutResponse)
    async def checkout(body: CheckoutRequest) -> CheckoutResponse:
        # Every refusal (InvalidMoney: 422) happens here, before the gateway is asked.
        amount = Money.parse_requested(body.amount, body.currency)
        if amount.amount <= 0:
            raise InvalidMoney(f"a checkout's amount must be positive, got {amount}")
        result = await side.checkout.checkout(
            order_id=body.order_id, amount=amount, description=body.description
        )
        return CheckoutResponse(
            order_id=result.order_id,
            provider=result.provider,
            preference_id=result.preference_id,
            init_point=result.init_point,
            amount=str(result.amount.amount),
            currency=result.amount.currency,
        )

    return router
