"""The payments API's two listeners: the public one serves only webhooks and health; the
internal one serves checkout (behind the service token), admin and docs."""

from __future__ import annotations

import httpx
import pytest
from fastapi import HTTPException

from payrelay.config import Settings
from payrelay.entrypoints.auth import require_bearer
from tests.integration.test_webhooks import notifications_count, post, signed
from tests.support import Customer, StackFactory, adapters_of

CHECKOUT = {"order_id": "shop-1", "amount": "12.50", "currency": "BRL", "description": "d"}
SERVICE_TOKEN = "service-token-for-tests"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "no credential"),
        ({"authorization": SERVICE_TOKEN}, "the token without the Bearer scheme"),
        ({"authorization": f"Basic {SERVICE_TOKEN}"}, "another scheme"),
        (bearer("not-the-token"), "a wrong token"),
        ({"authorization": "Bearer"}, "the scheme alone"),
        (bearer("admin-token-for-tests"), "the admin token"),
    ],
)
async def test_checkout_without_the_service_token_is_401_and_creates_no_preference(
    make_stack: StackFactory, http: httpx.AsyncClient, headers: dict[str, str], why: str
):
    async with make_stack(start_workers=False, service_token=SERVICE_TOKEN,
                          admin_token="admin-token-for-tests") as stack:
        response = await http.post(f"{stack.payments_internal_url}/checkout", json=CHECKOUT,
                                   headers=headers)
        assert response.status_code == 401, why
        assert response.headers["www-authenticate"] == "Bearer"
        assert SERVICE_TOKEN not in response.text
        assert "shop-1" not in stack.simulator.ledger()


async def test_checkout_with_the_service_token_creates_the_preference(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack(start_workers=False, service_token=SERVICE_TOKEN) as stack:
        response = await http.post(f"{stack.payments_internal_url}/checkout", json=CHECKOUT,
                                   headers=bearer(SERVICE_TOKEN))
        assert response.status_code == 200, response.text
        assert response.json()["preference_id"]
        assert "shop-1" in stack.simulator.ledger()


async def test_the_orders_service_presents_its_own_token_with_no_setup(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    # No PAYRELAY_SERVICE_TOKEN: one process running both APIs makes a random one.
    async with make_stack() as stack:
        token = stack.settings.service_token.get_secret_value()
        assert len(token) >= 32
        customer = Customer(stack, http)
        order_id = await customer.order()
        await customer.pay(await customer.checkout(order_id))
        await customer.wait_until_status(order_id, "paid")
        unauthenticated = await http.post(f"{stack.payments_internal_url}/checkout",
                                          json=CHECKOUT)
        assert unauthenticated.status_code == 401
    async with make_stack(start_workers=False) as again:
        assert again.settings.service_token.get_secret_value() != token


def test_an_empty_service_token_refuses_every_checkout():
    check = require_bearer(lambda: "", name="service token")
    for given in (None, "", "Bearer ", "Bearer x"):
        with pytest.raises(HTTPException) as refused:
            check(given)
        assert refused.value.status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/checkout"), ("GET", "/admin/dead-letters"), ("GET", "/docs"),
     ("GET", "/openapi.json"), ("GET", "/redoc")],
)
async def test_the_public_listener_serves_no_checkout_admin_or_docs(
    make_stack: StackFactory, http: httpx.AsyncClient, method: str, path: str
):
    async with make_stack(start_workers=False, service_token=SERVICE_TOKEN,
                          admin_token="admin-token-for-tests") as stack:
        headers = bearer(SERVICE_TOKEN if path == "/checkout" else "admin-token-for-tests")
        response = await http.request(method, f"{stack.payments_url}{path}", headers=headers,
                                      json=CHECKOUT if method == "POST" else None)
        assert response.status_code == 404
        assert "shop-1" not in stack.simulator.ledger()


async def test_each_listener_serves_its_own_routes_and_health(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack(start_workers=False, admin_token="admin-token-for-tests") as stack:
        assert (await post(http, stack.payments_url, signed("1000000999"))).status_code == 200
        assert (await post(http, stack.payments_internal_url, signed("1000000998"))
                ).status_code == 404
        assert await notifications_count(adapters_of(stack).payments_db) == 1
        for url in (stack.payments_url, stack.payments_internal_url):
            assert (await http.get(f"{url}/readyz")).status_code == 200
        docs = await http.get(f"{stack.payments_internal_url}/openapi.json")
        assert set(docs.json()["paths"]) >= {"/checkout", "/admin/dead-letters"}
        assert "/webhooks/mercadopago" not in docs.json()["paths"]
        admin = await http.get(f"{stack.payments_internal_url}/admin/dead-letters",
                               headers=bearer("admin-token-for-tests"))
        assert admin.status_code == 200


def test_the_service_token_must_differ_from_the_admin_token():
    with pytest.raises(ValueError, match="must differ") as refused:
        Settings(service_token="same-token", admin_token="same-token")
    assert "same-token" not in str(refused.value)
