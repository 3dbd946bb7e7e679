"""payrelay's own APIs at their edges: money is exact text, ids are bounded, admin is Bearer.

Every refusal here is a 422 (or 401/404) decided before anything is asked of the gateway,
which the simulator's ledger shows: no preference exists for a refused checkout.
"""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import func, select

from payrelay.adapters.storage import tables as t
from payrelay.entrypoints.embedded import EmbeddedStack
from tests.support import StackFactory, adapters_of

TOKEN = "admin-edge-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

# (JSON text of the amount, currency, why it is refused)
REFUSED_AMOUNTS = [
    ("12345678901234567.8", "BRL", "a JSON number (a double would round it)"),
    ("25", "BRL", "a JSON integer: amounts are strings"),
    ('"10000000000000.00"', "BRL", "10**15 minor units: past the maximum"),
    ('"92233720368547758.08"', "BRL", "past BigInteger minor units"),
    ('"10.005"', "BRL", "finer than the centavo"),
    ('"1500.5"', "CLP", "CLP has no decimals"),
    ('"1.2345"', "KWD", "KWD has three decimals"),
    ('"10.00"', "QQQ", "not an ISO 4217 code"),
    ('"10.00"', "XAU", "gold has no minor unit: no payment is made in it"),
    ('"10.00"', "brl", "codes are upper case"),
    ('"-5.00"', "BRL", "negative"),
    ('"1e3"', "BRL", "exponent notation"),
    ('"10,50"', "BRL", "a comma"),
    ('" 10.50"', "BRL", "surrounding space"),
    ('"NaN"', "BRL", "not a number"),
]


def checkout_json(amount: str, currency: str, order_id: str = "shop-1") -> bytes:
    return (f'{{"order_id": {json.dumps(order_id)}, "amount": {amount}, '
            f'"currency": "{currency}"}}').encode()


def order_json(total: str, unit_price: str, currency: str) -> bytes:
    return (f'{{"items": [{{"sku": "SKU-1", "quantity": 1, "unit_price": {unit_price}}}], '
            f'"total": {total}, "currency": "{currency}"}}').encode()


async def post_json(
    http: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await http.post(
        url, content=body, headers={"content-type": "application/json", **(headers or {})}
    )


def service(stack: EmbeddedStack) -> dict[str, str]:
    """The orders service's credentials for the internal listener's /checkout."""
    return {"Authorization": f"Bearer {stack.settings.service_token.get_secret_value()}"}


async def orders_stored(stack: EmbeddedStack) -> int:
    async with adapters_of(stack).orders_db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(t.orders))).scalar_one())


# --- money ------------------------------------------------------------------------------

async def test_checkout_refuses_inexact_or_unknown_money_before_the_gateway(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack(start_workers=False) as stack:
        for amount, currency, why in REFUSED_AMOUNTS:
            response = await post_json(
                http, f"{stack.payments_internal_url}/checkout", checkout_json(amount, currency),
                service(stack),
            )
            assert response.status_code == 422, (why, response.text)
        assert stack.simulator.ledger() == {}  # no preference was created


async def test_an_order_refuses_inexact_or_unknown_money(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack(start_workers=False) as stack:
        for amount, currency, why in REFUSED_AMOUNTS:
            valid = '"1500"' if currency == "CLP" else '"1.000"' if currency == "KWD" else '"1"'
            for total, price in ((amount, valid), (valid, amount)):
                response = await post_json(
                    http, f"{stack.orders_url}/orders", order_json(total, price, currency)
                )
                assert response.status_code == 422, (why, total, price, response.text)
        assert await orders_stored(stack) == 0
        assert stack.simulator.ledger() == {}


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize(
    ("amount", "currency"),
    [("9999999999999.99", "BRL"), ("999999999999999", "CLP"), ("1.234", "KWD"),
     ("1.2345", "CLF"), ("1500.0", "CLP")],
)
async def test_the_largest_and_finest_valid_amounts_are_taken_and_stored(
    make_stack: StackFactory, http: httpx.AsyncClient, amount: str, currency: str
):
    async with make_stack(start_workers=False) as stack:
        order = await post_json(
            http, f"{stack.orders_url}/orders",
            order_json(f'"{amount}"', f'"{amount}"', currency),
        )
        assert order.status_code == 201, order.text
        checkout = await http.post(
            f"{stack.orders_url}/orders/{order.json()['order_id']}/checkout"
        )
        assert checkout.status_code == 200, checkout.text
        (entry,) = stack.simulator.ledger().values()
        assert entry.currency == currency


# --- order ids and descriptions ---------------------------------------------------------

@pytest.mark.parametrize(
    "order_id", ["pedido-ñ", "注文-1", "a b", "x" * 65, ""],
    ids=["latin", "cjk", "space", "too-long", "empty"],
)
async def test_an_order_id_the_idempotency_header_cannot_carry_is_refused(
    make_stack: StackFactory, http: httpx.AsyncClient, order_id: str
):
    async with make_stack(start_workers=False) as stack:
        response = await post_json(
            http, f"{stack.payments_internal_url}/checkout",
            checkout_json('"10.00"', "BRL", order_id), service(stack),
        )
        assert response.status_code == 422, response.text
        assert stack.simulator.ledger() == {}


@pytest.mark.parametrize("description", [None, "", "   "], ids=["absent", "empty", "blank"])
async def test_a_checkout_without_description_gets_a_default_title(
    make_stack: StackFactory, http: httpx.AsyncClient, description: str | None
):
    body: dict[str, str] = {"order_id": "shop-7", "amount": "10.00", "currency": "BRL"}
    if description is not None:
        body["description"] = description
    async with make_stack(start_workers=False) as stack:
        response = await http.post(f"{stack.payments_internal_url}/checkout", json=body,
                                   headers=service(stack))
        assert response.status_code == 200, response.text
        preference = stack.simulator.preference(response.json()["preference_id"])
        assert [item["title"] for item in preference["items"]] == ["order shop-7"]


async def test_a_checkout_keeps_its_description_as_the_title(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    body = {"order_id": "shop-8", "amount": "10.00", "currency": "BRL",
            "description": "Caneca azul, 2 un."}
    async with make_stack(start_workers=False) as stack:
        response = await http.post(f"{stack.payments_internal_url}/checkout", json=body,
                                   headers=service(stack))
        preference = stack.simulator.preference(response.json()["preference_id"])
        assert preference["items"][0]["title"] == "Caneca azul, 2 un."


@pytest.mark.parametrize("path", ["", "/cancel", "/checkout"])
async def test_an_order_path_id_no_order_can_have_is_refused(
    make_stack: StackFactory, http: httpx.AsyncClient, path: str
):
    async with make_stack(start_workers=False) as stack:
        method = "GET" if not path else "POST"
        for order_id in ("x" * 10_000, "%C3%B1", "%00"):
            response = await http.request(method, f"{stack.orders_url}/orders/{order_id}{path}")
            assert response.status_code in (404, 422), (order_id[:20], response.text)


# --- admin ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("authorization", "status"),
    [(TOKEN, 401), (f"Token {TOKEN}", 401), (f"Basic {TOKEN}", 401), (f"Bearer{TOKEN}", 401),
     (f"Bearer {TOKEN}x", 401), ("Bearer", 401),
     (f"Bearer {TOKEN}", 200), (f"bearer {TOKEN}", 200), (f"BEARER  {TOKEN}", 200)],
)
async def test_the_admin_token_needs_the_bearer_scheme(
    make_stack: StackFactory, http: httpx.AsyncClient, authorization: str, status: int
):
    async with make_stack(start_workers=False, admin_token=TOKEN) as stack:
        response = await http.get(f"{stack.payments_internal_url}/admin/dead-letters",
                                  headers={"Authorization": authorization})
        assert response.status_code == status, response.text


@pytest.mark.parametrize(("limit", "status"), [
    (10**20, 422), (2**63, 422), (0, 422), (-1, 422), (1001, 422), ("ten", 422),
    (1, 200), (1000, 200),
])
async def test_the_dead_letter_listing_limit_is_bounded(
    make_stack: StackFactory, http: httpx.AsyncClient, limit: int | str, status: int
):
    async with make_stack(start_workers=False, admin_token=TOKEN) as stack:
        response = await http.get(f"{stack.payments_internal_url}/admin/dead-letters",
                                  params={"limit": limit}, headers=AUTH)
        assert response.status_code == status, response.text


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize(
    ("dead_letter_id", "statuses"),
    [("x" * 10_000, (422,)), ("payments-" + "9" * 10_000, (422,)),
     ("payments-99999999999999999999", (422,)), ("payments-2147483648", (422,)),
     ("payments-²", (422,)),
     ("notification-" + "1" * 30, (422,)), ("refund-" + "1" * 65, (422,)),
     ("nothing-1", (422,)), ("payments-12", (404,)), ("notification-2147483647", (404,)),
     ("refund-1000000001", (404, 409))],  # a refund is never purged: 409
    ids=["10k-chars", "10k-digits", "past-bigint", "past-int4", "unicode-digit",
         "long-notification", "long-refund", "unknown-kind", "unknown-payments",
         "unknown-notification", "unknown-refund"],
)
async def test_a_dead_letter_id_that_names_nothing_is_404_or_422_never_500(
    make_stack: StackFactory, http: httpx.AsyncClient,
    dead_letter_id: str, statuses: tuple[int, ...],
):
    async with make_stack(start_workers=False, admin_token=TOKEN) as stack:
        url = f"{stack.payments_internal_url}/admin/dead-letters"
        answers = [
            await http.get(f"{url}/{dead_letter_id}", headers=AUTH),
            await http.delete(f"{url}/{dead_letter_id}", headers=AUTH),
            await http.post(f"{url}/replay", json={"ids": [dead_letter_id]}, headers=AUTH),
        ]
        for response in answers:
            assert response.status_code in statuses, (response.request.method, response.text)
