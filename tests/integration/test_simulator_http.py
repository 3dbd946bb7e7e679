"""The simulator over real HTTP, with a real receiver for its webhooks.

One simulator and one receiver serve the whole module (starting uvicorn costs ~0.2 s);
each test uses its own order ids and receiver path, so they cannot see each other's data.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from payrelay.domain.signature import verify_signature
from payrelay.simulator import (
    DeliveryPolicy,
    EmbeddedServer,
    GatewaySimulator,
    SimulatorFaults,
    SimulatorServer,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKEN = "APP_USR-integration-token"
SECRET = "integration-webhook-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MP_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    """A webhook endpoint: records every POST; /hooks/{name} answers `answers[name]` in turn."""

    answers: dict[str, list[int]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def hook(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = json.loads(await request.body())
        self.received.append(
            Received(name, dict(request.query_params), dict(request.headers), body)
        )
        async with self.arrived:
            self.arrived.notify_all()
        queue = self.answers.get(name, [])
        return Response(status_code=queue.pop(0) if queue else 200)

    def at(self, name: str) -> list[Received]:
        return [r for r in self.received if r.path == name]

    async def wait_for(self, name: str, count: int) -> list[Received]:
        """Wait (2 s at most) until `count` deliveries reached /hooks/{name}."""
        async with asyncio.timeout(2), self.arrived:
            await self.arrived.wait_for(lambda: len(self.at(name)) >= count)
        return self.at(name)


@dataclass
class World:
    api: httpx.AsyncClient
    simulator: GatewaySimulator
    receiver: Receiver
    receiver_url: str

    def hook_url(self, name: str) -> str:
        return f"{self.receiver_url}/hooks/{name}"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world() -> AsyncIterator[World]:
    receiver = Receiver()
    receiver_app = Starlette(routes=[Route("/hooks/{name}", receiver.hook, methods=["POST"])])
    simulator = GatewaySimulator(
        access_token=TOKEN,
        webhook_secret=SECRET,
        approve_delay=0.01,
        delivery=DeliveryPolicy(base_delay=0.01, max_delay=0.05, max_attempts=5),
    )
    async with (
        EmbeddedServer(receiver_app) as hooks_server,
        SimulatorServer(simulator) as server,
        httpx.AsyncClient(base_url=server.base_url) as api,
    ):
        yield World(api, server.simulator, receiver, hooks_server.base_url)
    assert simulator.delivery_crashes == []


def decoded(response: httpx.Response) -> Any:
    return json.loads(response.content, parse_float=Decimal)


async def new_order(
    world: World, *, hook: str | None = None, unit_price: str = "10.10"
) -> dict[str, Any]:
    order_id = f"order-{uuid.uuid4()}"
    url = world.hook_url(hook or "quiet")
    # Written by hand so unit_price travels as the JSON number 10.10, digit for digit.
    body = (
        f'{{"items": [{{"title": "Yerba", "quantity": 3, "unit_price": {unit_price},'
        f' "currency_id": "ARS"}}], "external_reference": "{order_id}",'
        f' "notification_url": "{url}"}}'
    )
    response = await world.api.post(
        "/checkout/preferences", content=body, headers={**AUTH, "content-type": "application/json"}
    )
    assert response.status_code == 201, response.text
    preference: dict[str, Any] = decoded(response)
    return preference


async def pay(world: World, preference_id: str, outcome: str = "approve") -> int:
    response = await world.api.post(
        f"/simulator/preferences/{preference_id}/pay", json={"outcome": outcome}
    )
    assert response.status_code == 200, response.text
    payment_id: int = response.json()["payment_id"]
    return payment_id


# -- the MercadoPago API ------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]
)
async def test_api_calls_without_the_token_are_unauthorized(
    world: World, headers: dict[str, str]
) -> None:
    for method, path in [
        ("GET", "/v1/payments/1000000001"),
        ("POST", "/checkout/preferences"),
        ("GET", "/v1/payments/search"),
        ("POST", "/v1/payments/1/refunds"),
    ]:
        response = await world.api.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (method, path)
        body = response.json()
        assert (body["error"], body["status"]) == ("unauthorized", 401)
        assert body["message"]


async def test_preference_idempotency_and_exact_amounts(world: World) -> None:
    body = {
        "items": [{"title": "Mate", "quantity": 1, "unit_price": "99.90", "currency_id": "BRL"}],
        "external_reference": f"order-{uuid.uuid4()}",
    }
    key = {"X-Idempotency-Key": str(uuid.uuid4())}

    first = await world.api.post("/checkout/preferences", json=body, headers={**AUTH, **key})
    again = await world.api.post("/checkout/preferences", json=body, headers={**AUTH, **key})
    other = await world.api.post("/checkout/preferences", json=body, headers=AUTH)

    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"] != other.json()["id"]
    assert b'"unit_price":99.90' in first.content
    preference = first.json()
    for name in ("init_point", "sandbox_init_point", "date_created", "items"):
        assert preference[name]
    assert preference["external_reference"] == body["external_reference"]


async def test_get_payment_has_mercadopago_fields(world: World) -> None:
    preference = await new_order(world)
    payment_id = await pay(world, preference["id"])

    response = await world.api.get(f"/v1/payments/{payment_id}", headers=AUTH)

    assert response.status_code == 200
    assert b'"transaction_amount":30.30,' in response.content
    payment = decoded(response)
    assert (payment["id"], payment["status"], payment["status_detail"]) == (
        payment_id,
        "approved",
        "accredited",
    )
    assert payment["transaction_amount"] == Decimal("30.30")
    assert payment["transaction_amount_refunded"] == 0
    assert (payment["currency_id"], payment["live_mode"]) == ("ARS", False)
    assert payment["external_reference"] == preference["external_reference"]
    for name in ("date_created", "date_approved", "date_last_updated"):
        assert MP_TIMESTAMP.match(payment[name]), payment[name]
    assert payment["payer"]["email"] and payment["payer"]["identification"]["number"]
    assert payment["card"]["last_four_digits"] and payment["card"]["cardholder"]["name"]
    assert payment["metadata"]["preference_id"] == preference["id"]
    assert payment["order"]["id"]


async def test_unknown_payment_is_a_404_in_mercadopago_shape(world: World) -> None:
    for payment_id in ("999", "not-a-number"):
        response = await world.api.get(f"/v1/payments/{payment_id}", headers=AUTH)
        assert response.status_code == 404
        assert (response.json()["error"], response.json()["status"]) == ("not_found", 404)


async def test_search_by_external_reference_oldest_first(world: World) -> None:
    preference = await new_order(world)
    rejected = await pay(world, preference["id"], "reject")
    approved = await pay(world, preference["id"], "approve")
    await pay(world, (await new_order(world))["id"])  # another order, not to be found

    response = await world.api.get(
        "/v1/payments/search",
        params={"external_reference": preference["external_reference"]},
        headers=AUTH,
    )

    found = decoded(response)
    assert found["paging"] == {"total": 2, "limit": 30, "offset": 0}
    assert [(p["id"], p["status"]) for p in found["results"]] == [
        (rejected, "rejected"),
        (approved, "approved"),
    ]


async def test_search_by_last_update_with_iso_dates_sort_and_paging(world: World) -> None:
    preference = await new_order(world)
    first = await pay(world, preference["id"], "pending")
    second = await pay(world, preference["id"], "reject")
    # Dates have millisecond precision: let the clock move, or the two updates could tie.
    await asyncio.sleep(0.005)
    await world.simulator.set_status(first, "approved")  # now the latest update
    since = world.simulator.payment(first)["date_created"]  # e.g. ...T10:00:00.123-03:00

    def page(offset: int) -> dict[str, str | int]:
        return {
            "external_reference": preference["external_reference"],
            "range": "date_last_updated",
            "begin_date": since,
            "end_date": "NOW",
            "sort": "date_last_updated",
            "criteria": "asc",
            "limit": 1,
            "offset": offset,
        }

    answers = [
        decoded(await world.api.get("/v1/payments/search", params=page(n), headers=AUTH))
        for n in (0, 1, 2)
    ]

    assert [a["paging"] for a in answers] == [
        {"total": 2, "limit": 1, "offset": n} for n in (0, 1, 2)
    ]
    assert [[p["id"] for p in a["results"]] for a in answers] == [[second], [first], []]


@pytest.mark.parametrize(
    ("params", "cause"),
    [
        ({"limit": "1001"}, 1000),
        ({"begin_date": "23/11/2026"}, 1001),
        ({"sort": "amount"}, 1003),
        ({"criteria": "sideways"}, 1004),
        ({"offset": "first"}, 1),
    ],
)
async def test_search_refusals_are_400_with_mercadopago_cause(
    world: World, params: dict[str, str], cause: int
) -> None:
    response = await world.api.get("/v1/payments/search", params=params, headers=AUTH)

    assert response.status_code == 400
    body = response.json()
    assert (body["error"], body["status"]) == ("bad_request", 400)
    assert [c["code"] for c in body["cause"]] == [cause]


async def test_visibility_delay_hides_a_new_payment_from_reads(world: World) -> None:
    preference = await new_order(world)
    world.simulator.set_faults(SimulatorFaults(visibility_delay=60.0))
    try:
        payment_id = await pay(world, preference["id"])
        hidden = await world.api.get(f"/v1/payments/{payment_id}", headers=AUTH)
        search = {"external_reference": preference["external_reference"]}
        listed = await world.api.get("/v1/payments/search", params=search, headers=AUTH)
    finally:
        world.simulator.set_faults(SimulatorFaults())

    assert hidden.status_code == 404
    assert decoded(listed)["results"] == []
    shown = await world.api.get(f"/v1/payments/{payment_id}", headers=AUTH)
    assert shown.status_code == 200  # once the delay no longer applies, it is there


async def test_refund_idempotency_over_http(world: World) -> None:
    preference = await new_order(world)
    payment_id = await pay(world, preference["id"])
    key = {"X-Idempotency-Key": f"refund-{uuid.uuid4()}"}

    first = await world.api.post(f"/v1/payments/{payment_id}/refunds", headers={**AUTH, **key})
    again = await world.api.post(f"/v1/payments/{payment_id}/refunds", headers={**AUTH, **key})
    refused = await world.api.post(
        f"/v1/payments/{payment_id}/refunds", headers={**AUTH, "X-Idempotency-Key": "another"}
    )

    assert first.status_code == again.status_code == 201
    assert first.content == again.content
    assert decoded(first)["amount"] == Decimal("30.30")
    assert refused.status_code == 400
    assert (refused.json()["error"], refused.json()["status"]) == ("bad_request", 400)
    payment = decoded(await world.api.get(f"/v1/payments/{payment_id}", headers=AUTH))
    assert (payment["status"], payment["transaction_amount_refunded"]) == (
        "refunded",
        Decimal("30.30"),
    )
    ledger = await world.api.get(f"/simulator/ledger/{preference['external_reference']}")
    assert ledger.json() == {
        "currency": "ARS",
        "charged": "30.30",
        "refunded": "30.30",
        "charged_back": "0",
        "payments": [payment_id],
    }


async def test_partial_refund_amount_is_read_as_a_decimal(world: World) -> None:
    payment_id = await pay(world, (await new_order(world))["id"])

    response = await world.api.post(
        f"/v1/payments/{payment_id}/refunds",
        content=b'{"amount": 0.10}',
        headers={**AUTH, "content-type": "application/json"},
    )

    assert response.status_code == 201
    assert b'"amount":0.10,' in response.content
    payment = decoded(await world.api.get(f"/v1/payments/{payment_id}", headers=AUTH))
    assert (payment["status"], payment["transaction_amount_refunded"]) == (
        "approved",
        Decimal("0.10"),
    )


async def test_api_fault_switch_answers_500_or_503_then_recovers(world: World) -> None:
    await world.api.put("/simulator/faults", json={"seed": 3, "api_error_rate": 1.0})
    try:
        failed = await world.api.get("/v1/payments/search", headers=AUTH)
    finally:
        reset = await world.api.put("/simulator/faults", json={})

    assert failed.status_code in (500, 503)
    assert failed.json()["status"] == failed.status_code
    assert reset.json()["api_error_rate"] == 0
    assert (await world.api.get("/v1/payments/search", headers=AUTH)).status_code == 200


# -- webhooks ------------------------------------------------------------------------------


async def test_signed_notification_arrives_and_verifies(world: World) -> None:
    hook = f"signed-{uuid.uuid4()}"
    payment_id = await pay(world, (await new_order(world, hook=hook))["id"])

    [received] = await world.receiver.wait_for(hook, 1)
    assert received.query == {"data.id": str(payment_id), "type": "payment"}
    assert received.body["action"] == "payment.created"
    assert received.body["data"] == {"id": str(payment_id)}
    verify_signature(
        received.headers["x-signature"],
        data_id=received.query["data.id"],
        request_id=received.headers["x-request-id"],
        secrets=[SECRET],
    )


async def test_failing_receiver_gets_the_same_notification_until_it_accepts(world: World) -> None:
    hook = f"flaky-{uuid.uuid4()}"
    world.receiver.answers[hook] = [500, 500]
    await pay(world, (await new_order(world, hook=hook))["id"])

    await world.receiver.wait_for(hook, 3)
    async with asyncio.timeout(2):
        await world.simulator.settle()

    deliveries = world.receiver.at(hook)
    assert len(deliveries) == 3
    assert len({d.body["id"] for d in deliveries}) == 1
    assert len({d.headers["x-request-id"] for d in deliveries}) == 1
    for delivery in deliveries:
        verify_signature(
            delivery.headers["x-signature"],
            data_id=delivery.query["data.id"],
            request_id=delivery.headers["x-request-id"],
            secrets=[SECRET],
        )


async def test_pending_then_approve_and_chargeback_notify_over_http(world: World) -> None:
    hook = f"lifecycle-{uuid.uuid4()}"
    preference = await new_order(world, hook=hook)
    payment_id = await pay(world, preference["id"], "pending_then_approve")

    await world.receiver.wait_for(hook, 2)
    forced = await world.api.post(
        f"/simulator/payments/{payment_id}/status", json={"status": "charged_back"}
    )
    await world.receiver.wait_for(hook, 3)

    assert forced.json()["status"] == "charged_back"
    assert [r.body["action"] for r in world.receiver.at(hook)] == [
        "payment.created",
        "payment.updated",
        "payment.updated",
    ]
    ledger = (await world.api.get("/simulator/ledger")).json()[preference["external_reference"]]
    assert (ledger["charged"], ledger["charged_back"]) == ("30.30", "30.30")
    stats = (await world.api.get("/simulator/stats")).json()
    assert stats["delivered"] >= 3
