"""The simulator's own amount rule: by value, exact in the currency, held in plain notation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from payrelay.domain.currencies import ISO_4217_EXPONENTS
from payrelay.simulator import BadRequest
from payrelay.simulator.amounts import CURRENCY_DECIMALS, parse_amount
from payrelay.simulator.jsonio import dumps


@pytest.mark.parametrize(
    ("value", "currency", "held", "written"),
    [
        ("1500.0", "CLP", "1500.0", b"1500.0"),
        (Decimal("1.5E+3"), "CLP", "1500", b"1500"),
        ("25.1", "ARS", "25.1", b"25.1"),
        ("2.51e1", "ARS", "25.1", b"25.1"),
        (10, "BRL", "10", b"10"),
        ("1.234", "KWD", "1.234", b"1.234"),
        ("1.2345", "CLF", "1.2345", b"1.2345"),
    ],
)
def test_an_amount_is_taken_by_value_and_written_as_a_plain_number(
    value: object, currency: str, held: str, written: bytes
) -> None:
    amount = parse_amount(value, currency, name="unit_price")
    assert str(amount) == held
    assert dumps({"amount": amount}) == b'{"amount":' + written + b"}"


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        ("1500.5", "CLP"), ("25.123", "ARS"), ("1.23456", "CLF"),  # finer than the currency
        ("0", "ARS"), ("-1", "ARS"), ("NaN", "ARS"), ("Infinity", "ARS"), ("ten", "ARS"),
        (1.5, "ARS"), (True, "ARS"), (None, "ARS"), ("1E+50", "CLP"),
        ("1", "QQQ"), ("1", "usd"), ("1", "pesos"),
    ],
)
def test_anything_else_is_a_bad_request(value: object, currency: str) -> None:
    with pytest.raises(BadRequest):
        parse_amount(value, currency, name="unit_price")


def test_the_simulator_knows_the_currencies_payrelay_prices_in() -> None:
    """Written separately; if ISO 4217 changes, both tables must follow it."""
    assert dict(CURRENCY_DECIMALS) == dict(ISO_4217_EXPONENTS)
