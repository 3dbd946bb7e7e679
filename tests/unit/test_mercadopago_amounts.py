"""MercadoPago's amounts as JSON numbers: read by value, excess precision reported, not retried."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from decimal import Decimal

import pytest

from payrelay.adapters.gateways.mercadopago import MercadoPagoGateway, parse_page
from payrelay.domain.errors import MalformedResource
from payrelay.domain.money import AmountProblem, InexactAmount, Money
from tests.raw_gateway import payment_body, raw_gateway

GatewayFor = Callable[[Mapping[str, bytes]], MercadoPagoGateway]


@pytest.fixture
async def gateway_for() -> AsyncIterator[GatewayFor]:
    clients = []

    def make(bodies: Mapping[str, bytes]) -> MercadoPagoGateway:
        gateway, client = raw_gateway(bodies)
        clients.append(client)
        return gateway

    yield make
    for client in clients:
        await client.aclose()


@pytest.mark.parametrize(
    ("written", "currency", "text", "units"),
    [
        ("1500.0", "CLP", "1500", 1500),
        ("1500", "CLP", "1500", 1500),
        ("1.5E+3", "CLP", "1500", 1500),
        ("1500.000", "CLP", "1500", 1500),
        ("25.1", "ARS", "25.10", 2510),
        ("25.10", "ARS", "25.10", 2510),
        ("2.51e1", "ARS", "25.10", 2510),
    ],
)
async def test_an_amount_is_read_by_value_and_normalised(
    gateway_for: GatewayFor, written: str, currency: str, text: str, units: int
) -> None:
    gateway = gateway_for({"11": payment_body("11", amount=written, currency=currency)})
    snapshot = await gateway.fetch_payment("11")
    assert snapshot.inexact_amount is None
    assert str(snapshot.amount.amount) == text
    assert snapshot.amount.minor_units == units
    assert snapshot.amount_refunded == Money.parse("0", currency)


@pytest.mark.parametrize(
    ("written", "currency", "rounded"),
    [("25.123", "ARS", "25.12"), ("1500.5", "CLP", "1500"), ("0.999", "USD", "0.99")],
)
async def test_excess_precision_is_a_recorded_problem_not_a_gateway_failure(
    gateway_for: GatewayFor, written: str, currency: str, rounded: str
) -> None:
    gateway = gateway_for({"12": payment_body("12", amount=written, currency=currency)})
    snapshot = await gateway.fetch_payment("12")
    assert snapshot.inexact_amount == InexactAmount(written, AmountProblem.PRECISION)
    assert snapshot.amount == Money.parse(rounded, currency)  # toward zero, flagged above


async def test_search_reads_every_amount_by_value(gateway_for: GatewayFor) -> None:
    gateway = gateway_for({
        "21": payment_body("21", amount="1500.0", currency="CLP", order_id="o-7"),
        "22": payment_body("22", amount="1500.5", currency="CLP", order_id="o-7"),
        "23": payment_body("23", amount="10", currency="CLP", order_id="o-8"),
    })
    found = {s.payment_id: s for s in await gateway.search_payments("o-7")}
    assert set(found) == {"21", "22"}
    assert found["21"].amount == Money.parse("1500", "CLP")
    assert found["21"].inexact_amount is None
    assert found["22"].inexact_amount == InexactAmount("1500.5", AmountProblem.PRECISION)


async def test_a_refunded_total_is_read_by_value_too(gateway_for: GatewayFor) -> None:
    body = payment_body("31", amount="1500.0", currency="CLP", status="refunded",
                        refunded="1500.0")
    snapshot = await gateway_for({"31": body}).fetch_payment("31")
    assert snapshot.amount_refunded == Money.parse("1500", "CLP")


@pytest.mark.parametrize("written", ['"ten"', "null", "true", '{"value": 10}'])
async def test_what_is_no_amount_at_all_is_still_an_unexpected_resource(
    gateway_for: GatewayFor, written: str
) -> None:
    gateway = gateway_for({"41": payment_body("41", amount=written, currency="ARS")})
    # Permanent: asking again gives the same answer (decide_retry gives up after a few tries).
    with pytest.raises(MalformedResource, match="unexpected payment resource"):
        await gateway.fetch_payment("41")


def test_a_search_result_payrelay_cannot_read_is_handed_on_not_fatal() -> None:
    good = json.loads(payment_body("51", amount="10", currency="BRL"), parse_float=Decimal)
    odd = {**good, "id": 52, "status": "no_such_status"}
    page = parse_page({"paging": {"total": 2, "limit": 30, "offset": 0}, "results": [good, odd]})
    assert [p.payment_id for p in page.payments] == ["51"]
    assert [pid for pid, _ in page.unreadable] == ["52"]
    with pytest.raises(MalformedResource, match="unreadable search result"):
        parse_page({"paging": {"total": 1, "limit": 30, "offset": 0},
                    "results": [{"id": "x", "status": "?"}]})
