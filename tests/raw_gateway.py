"""A MercadoPago that answers with JSON bodies written by hand, amounts exactly as given.

The simulator writes amounts as it holds them, and it only holds amounts valid in their
currency; a real gateway may write `25.123` for ARS. To see what payrelay does with such a
body, these helpers serve it through httpx's MockTransport to the real MercadoPagoGateway.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import httpx

from payrelay.adapters.gateways.mercadopago import MercadoPagoGateway
from payrelay.adapters.gateways.wire import HttpxWire

TOKEN = "raw-token"
_PAYMENT = re.compile(r"^/v1/payments/(\d+)$")


def payment_body(
    payment_id: str,
    *,
    amount: str,
    currency: str,
    order_id: str | None = "order-1",
    status: str = "approved",
    refunded: str = "0",
    updated: str = "2026-11-24T10:00:00.000-03:00",
) -> bytes:
    """A payment resource with `amount` written verbatim as a JSON number (1500.0, 1.5E+3)."""
    approved = status in ("approved", "refunded", "charged_back", "in_mediation")
    fields = {
        "id": int(payment_id),
        "status": json.dumps(status),
        "status_detail": json.dumps("accredited"),
        "currency_id": json.dumps(currency),
        "external_reference": json.dumps(order_id),
        "transaction_amount": amount,
        "transaction_amount_refunded": refunded,
        "date_created": json.dumps("2026-11-24T09:59:00.000-03:00"),
        "date_approved": json.dumps("2026-11-24T09:59:30.000-03:00") if approved else "null",
        "date_last_updated": json.dumps(updated),
        "payer": '{"email": "test_user_1@testuser.com"}',
    }
    return ("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}").encode()


def raw_gateway(
    bodies: Mapping[str, bytes], *, seen: list[httpx.Request] | None = None
) -> tuple[MercadoPagoGateway, httpx.AsyncClient]:
    """The real gateway adapter over a transport serving `bodies` (payment id -> JSON).

    GET /v1/payments/{id} answers the body; GET /v1/payments/search answers every body whose
    external_reference matches; anything else is a 404. `bodies` is read at each request,
    so it may be filled in later; `seen` collects every request. Close the client when done.
    """

    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        found = _PAYMENT.match(request.url.path)
        if request.method == "GET" and found and found.group(1) in bodies:
            return httpx.Response(200, content=bodies[found.group(1)])
        if request.method == "GET" and request.url.path == "/v1/payments/search":
            wanted = request.url.params.get("external_reference")
            matching = [
                body for body in bodies.values()
                if json.loads(body).get("external_reference") == wanted
            ]
            paging = f'{{"total":{len(matching)},"limit":30,"offset":0}}'.encode()
            return httpx.Response(
                200,
                content=b'{"paging":' + paging + b',"results":[' + b",".join(matching) + b"]}",
            )
        return httpx.Response(404, json={"message": "not found"})

    client = httpx.AsyncClient(
        base_url="https://api.mercadopago.test", transport=httpx.MockTransport(handle)
    )
    return MercadoPagoGateway(HttpxWire(client), access_token=TOKEN), client
