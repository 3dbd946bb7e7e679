"""The simulator over HTTP: MercadoPago's paths for the API, /simulator/... for tests.

Bodies are read raw and parsed with Decimal for every fractional number, and answers are
written with `jsonio.dumps`, so no amount passes through float on its way in or out.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response

from payrelay.simulator.errors import BadRequest, InjectedFailure, SimulatorError
from payrelay.simulator.faults import ApiFault, faults_from_json, faults_to_json
from payrelay.simulator.inputs import field_of, parse_outcome
from payrelay.simulator.jsonio import dumps, loads
from payrelay.simulator.ledger import ledger_entry_json
from payrelay.simulator.search import query_from_params
from payrelay.simulator.state import GatewaySimulator


def create_app(simulator: GatewaySimulator) -> FastAPI:
    """Build the ASGI app around one simulator (nothing is built at import)."""
    # FastAPI's OpenTelemetry off: unconfigured, it still reads os.environ on every request.
    app = FastAPI(
        title="payrelay MercadoPago simulator", docs_url=None, redoc_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.simulator = simulator
    app.add_exception_handler(SimulatorError, _mp_error)  # type: ignore[arg-type]
    app.include_router(_gateway_routes())
    app.include_router(_payment_controls())
    app.include_router(_gateway_controls())
    return app


def json_response(payload: object, status: int = 200) -> Response:
    return Response(content=dumps(payload), status_code=status, media_type="application/json")


async def _mp_error(request: Request, exc: SimulatorError) -> Response:
    return json_response(exc.body(), exc.status)


def _simulator(request: Request) -> GatewaySimulator:
    simulator: GatewaySimulator = request.app.state.simulator
    return simulator


Sim = Annotated[GatewaySimulator, Depends(_simulator)]


async def _gateway_call(request: Request, sim: Sim) -> ApiFault:
    """Authenticate, then apply the API fault switches (slow; fail before any effect)."""
    sim.authorize(request.headers.get("authorization"))
    fault = sim.roll_api_fault()
    if fault.slow_seconds:
        await asyncio.sleep(fault.slow_seconds)
    if fault.error_status is not None and not fault.after_effect:
        raise InjectedFailure(fault.error_status)
    return fault


Fault = Annotated[ApiFault, Depends(_gateway_call)]


def _answer(fault: ApiFault, payload: object, status: int = 200) -> Response:
    # Reached only after the call took effect: a fault here loses the reply, not the effect,
    # as when a response times out after the gateway committed.
    if fault.error_status is not None:
        raise InjectedFailure(fault.error_status)
    return json_response(payload, status)


def _refund_amount(body: object) -> Decimal | int | str | None:
    amount = field_of(body, "amount")
    if amount is None or (isinstance(amount, Decimal | int | str) and not isinstance(amount, bool)):
        return amount
    raise BadRequest("amount must be a number")


def _gateway_routes() -> APIRouter:
    router = APIRouter()

    @router.post("/checkout/preferences")
    async def create_preference(request: Request, sim: Sim, fault: Fault) -> Response:
        body = loads(await request.body())
        key = request.headers.get("x-idempotency-key")
        return _answer(fault, sim.create_preference(body, idempotency_key=key), 201)

    @router.get("/checkout/preferences/{preference_id}")
    async def get_preference(preference_id: str, sim: Sim, fault: Fault) -> Response:
        return _answer(fault, sim.preference(preference_id))

    # Registered before /v1/payments/{payment_id}, which would otherwise match "search".
    @router.get("/v1/payments/search")
    async def search_payments(request: Request, sim: Sim, fault: Fault) -> Response:
        # Read raw, so a bad value is refused as MercadoPago refuses it (400 with its cause
        # code), not with FastAPI's own 422.
        query = query_from_params(dict(request.query_params))
        return _answer(fault, sim.search(query))

    @router.get("/v1/payments/{payment_id}")
    async def get_payment(payment_id: str, sim: Sim, fault: Fault) -> Response:
        return _answer(fault, sim.payment(payment_id))

    @router.post("/v1/payments/{payment_id}/refunds")
    async def create_refund(payment_id: str, request: Request, sim: Sim, fault: Fault) -> Response:
        amount = _refund_amount(loads(await request.body()))
        key = request.headers.get("x-idempotency-key")
        refund = await sim.refund(payment_id, amount=amount, idempotency_key=key)
        return _answer(fault, refund, 201)

    @router.get("/v1/payments/{payment_id}/refunds")
    async def list_refunds(payment_id: str, sim: Sim, fault: Fault) -> Response:
        return _answer(fault, sim.refunds(payment_id))

    return router


def _payment_controls() -> APIRouter:
    """What a test does to payments: the customer pays, the world changes their status."""
    router = APIRouter(prefix="/simulator")

    @router.post("/preferences/{preference_id}/pay")
    async def pay(preference_id: str, request: Request, sim: Sim) -> Response:
        body = loads(await request.body())
        drop = field_of(body, "drop_notifications")
        if drop is not None and not isinstance(drop, bool):
            raise BadRequest("drop_notifications must be true or false")
        payment_id = await sim.pay(preference_id, parse_outcome(body),
                                   drop_notifications=bool(drop))
        status = sim.peek_payment(payment_id)["status"]
        return json_response({"payment_id": payment_id, "status": status})

    @router.post("/payments/{payment_id}/status")
    async def set_status(payment_id: str, request: Request, sim: Sim) -> Response:
        body = loads(await request.body())
        detail = field_of(body, "status_detail")
        payment = await sim.set_status(
            payment_id,
            str(field_of(body, "status")),
            status_detail=detail if isinstance(detail, str) else None,
        )
        return json_response(payment)

    return router


def _gateway_controls() -> APIRouter:
    """What a test reads or sets on the gateway itself: ledger, faults, secret, stats."""
    router = APIRouter(prefix="/simulator")

    @router.get("/ledger")
    async def ledger(sim: Sim) -> Response:
        return json_response({k: ledger_entry_json(v) for k, v in sim.ledger().items()})

    @router.get("/ledger/{order_id}")
    async def ledger_entry(order_id: str, sim: Sim) -> Response:
        return json_response(ledger_entry_json(sim.ledger_entry(order_id)))

    @router.get("/faults")
    async def get_faults(sim: Sim) -> Response:
        return json_response(faults_to_json(sim.faults))

    @router.put("/faults")
    async def put_faults(request: Request, sim: Sim) -> Response:
        sim.set_faults(faults_from_json(loads(await request.body())))
        return json_response(faults_to_json(sim.faults))

    @router.put("/webhook-secret")
    async def rotate_secret(request: Request, sim: Sim) -> Response:
        secret = field_of(loads(await request.body()), "secret")
        sim.rotate_secret(secret if isinstance(secret, str) else "")
        return json_response({"rotated": True})

    @router.get("/stats")
    async def stats(sim: Sim) -> Response:
        return json_response(sim.stats.as_json())

    return router
