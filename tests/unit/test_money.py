"""Money: exact decimal amounts, per-currency minor units, never a float."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payrelay.domain.errors import InvalidMoney
from payrelay.domain.money import (
    MAX_MINOR_UNITS,
    AmountProblem,
    InexactAmount,
    Money,
    minor_unit_exponent,
    read_amount,
)

CURRENCIES = ["BRL", "USD", "ARS", "EUR", "CLP", "JPY"]


@pytest.mark.parametrize(
    ("raw", "currency", "expected"),
    [
        ("10.50", "BRL", Decimal("10.50")),
        ("0.01", "USD", Decimal("0.01")),
        ("10", "USD", Decimal("10")),
        ("-3.20", "BRL", Decimal("-3.20")),
        (10, "BRL", Decimal("10")),
        (0, "CLP", Decimal("0")),
        (Decimal("99.9"), "USD", Decimal("99.9")),
        ("1500", "CLP", Decimal("1500")),
        ("1E+2", "CLP", Decimal("100")),
        # Judged by value, not by the written scale: these are whole minor units.
        ("1500.0", "CLP", Decimal("1500")),
        ("1.5E+3", "CLP", Decimal("1500")),
        ("1.0", "CLP", Decimal("1")),
        ("25.1", "ARS", Decimal("25.10")),
        ("25.100", "ARS", Decimal("25.10")),
        ("100.00", "JPY", Decimal("100")),
    ],
)
def test_parse_accepts_decimal_text_ints_and_decimals(
    raw: str | int | Decimal, currency: str, expected: Decimal
) -> None:
    money = Money.parse(raw, currency)
    assert money.amount == expected
    assert isinstance(money.amount, Decimal)
    assert money.currency == currency


@pytest.mark.parametrize("raw", [10.5, 10.0, 0.1, float("nan")])
def test_parse_refuses_floats(raw: float) -> None:
    with pytest.raises(InvalidMoney):
        Money.parse(raw, "USD")


def test_constructor_refuses_a_float_amount() -> None:
    with pytest.raises(InvalidMoney):
        Money(10.5, "USD")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "currency"),
    [
        ("10.001", "USD"),
        ("0.005", "BRL"),
        ("10.5", "CLP"),
        ("1500.5", "CLP"),
        ("25.123", "ARS"),
        ("100.25", "JPY"),
        (Decimal("0.001"), "USD"),
    ],
)
def test_more_decimals_than_the_currency_allows_is_refused(
    raw: str | Decimal, currency: str
) -> None:
    with pytest.raises(InvalidMoney):
        Money.parse(raw, currency)


def test_exponents_per_currency() -> None:
    assert minor_unit_exponent("USD") == 2
    assert minor_unit_exponent("BRL") == 2
    assert minor_unit_exponent("CLP") == 0
    assert minor_unit_exponent("JPY") == 0


@pytest.mark.parametrize("currency", ["usd", "Usd", "USDX", "US", "", "U$D", "12A", " USD"])
def test_currency_must_be_three_uppercase_letters(currency: str) -> None:
    with pytest.raises(InvalidMoney):
        Money.parse("10.00", currency)


@pytest.mark.parametrize("currency", ["ÜSD", "ΑΒΓ"], ids=["latin-umlaut", "greek"])
def test_currency_letters_must_be_ascii_as_in_iso_4217(currency: str) -> None:
    with pytest.raises(InvalidMoney):
        Money.parse("10.00", currency)


@pytest.mark.parametrize("raw", ["ten", "", "10,50", "1.2.3", "NaN", "Infinity", "-Infinity"])
def test_text_that_is_not_a_finite_decimal_is_refused(raw: str) -> None:
    with pytest.raises(InvalidMoney):
        Money.parse(raw, "BRL")


def test_invalid_money_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="decimal"):
        Money.parse("ten", "BRL")


@pytest.mark.parametrize(
    ("raw", "currency", "units"),
    [("10.50", "BRL", 1050), ("0.01", "USD", 1), ("10", "USD", 1000), ("1500", "CLP", 1500)],
)
def test_minor_units(raw: str, currency: str, units: int) -> None:
    assert Money.parse(raw, currency).minor_units == units


def test_from_minor() -> None:
    assert Money.from_minor(1050, "BRL") == Money(Decimal("10.50"), "BRL")
    assert str(Money.from_minor(1050, "BRL").amount) == "10.50"
    assert Money.from_minor(1500, "CLP").amount == Decimal("1500")


@given(
    units=st.integers(min_value=-(10**15), max_value=10**15),
    currency=st.sampled_from(CURRENCIES),
)
def test_from_minor_then_minor_units_round_trips(units: int, currency: str) -> None:
    assert Money.from_minor(units, currency).minor_units == units


@st.composite
def moneys(draw: st.DrawFn) -> Money:
    currency = draw(st.sampled_from(CURRENCIES))
    places = draw(st.integers(min_value=0, max_value=minor_unit_exponent(currency)))
    amount = draw(
        st.decimals(
            min_value=Decimal("-1e13"),
            max_value=Decimal("1e13"),
            places=places,
            allow_nan=False,
            allow_infinity=False,
        )
    )
    return Money(amount, currency)


@given(moneys())
def test_minor_units_then_from_minor_keeps_the_value(money: Money) -> None:
    back = Money.from_minor(money.minor_units, money.currency)
    assert back.same_value(money)
    assert back.minor_units == money.minor_units


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        (("10", "BRL"), ("10.00", "BRL"), True),
        (("10.5", "BRL"), ("10.50", "BRL"), True),
        (("10.00", "BRL"), ("10.00", "USD"), False),
        (("10.00", "BRL"), ("10.01", "BRL"), False),
        (("-10.00", "BRL"), ("10.00", "BRL"), False),
    ],
)
def test_same_value(left: tuple[str, str], right: tuple[str, str], same: bool) -> None:
    assert Money.parse(*left).same_value(Money.parse(*right)) is same
    assert Money.parse(*right).same_value(Money.parse(*left)) is same


def test_str_keeps_the_written_scale() -> None:
    assert str(Money.parse("10.50", "BRL")) == "10.50 BRL"
    assert str(Money.parse("1500.0", "CLP")) == "1500.0 CLP"


@pytest.mark.parametrize(
    ("raw", "currency", "text"),
    [
        ("1500.0", "CLP", "1500"),
        ("1.5E+3", "CLP", "1500"),
        ("1500", "CLP", "1500"),
        ("25.1", "ARS", "25.10"),
        ("25.10", "ARS", "25.10"),
        ("25.100", "ARS", "25.10"),
        ("10", "BRL", "10.00"),
    ],
)
def test_normalized_writes_the_value_at_the_currency_exponent(
    raw: str, currency: str, text: str
) -> None:
    money = Money.parse(raw, currency)
    assert str(money.normalized().amount) == text
    assert money.normalized() == money
    assert money.normalized().minor_units == money.minor_units


# --- a gateway's amount: judged by value, excess precision reported, not raised ----------


@pytest.mark.parametrize(
    ("raw", "currency", "text", "units"),
    [
        ("1500.0", "CLP", "1500", 1500),
        ("1500", "CLP", "1500", 1500),
        (1500, "CLP", "1500", 1500),
        ("1.5E+3", "CLP", "1500", 1500),
        (Decimal("1500.0"), "CLP", "1500", 1500),
        ("25.1", "ARS", "25.10", 2510),
        ("25.10", "ARS", "25.10", 2510),
    ],
)
def test_read_amount_takes_whole_minor_units_however_written(
    raw: str | int | Decimal, currency: str, text: str, units: int
) -> None:
    money, inexact = read_amount(raw, currency)
    assert inexact is None
    assert str(money.amount) == text
    assert money.minor_units == units


@pytest.mark.parametrize(
    ("raw", "currency", "below"),
    [
        ("25.123", "ARS", "25.12"),
        ("25.129", "ARS", "25.12"),  # toward zero: never more than was charged
        ("1500.5", "CLP", "1500"),
        ("0.001", "USD", "0.00"),
        ("-3.205", "BRL", "-3.20"),
    ],
)
def test_read_amount_reports_excess_precision_with_the_text_as_written(
    raw: str, currency: str, below: str
) -> None:
    money, inexact = read_amount(raw, currency)
    assert inexact == InexactAmount(raw, AmountProblem.PRECISION)
    assert str(money.amount) == below
    assert money.currency == currency


@pytest.mark.parametrize(
    ("raw", "currency"),
    [(1.5, "ARS"), ("ten", "ARS"), ("NaN", "ARS"), ("Infinity", "CLP"), ("10", "ars"),
     ("1E+60", "BRL")],
)
def test_read_amount_still_refuses_what_is_no_amount(raw: object, currency: str) -> None:
    with pytest.raises(InvalidMoney):
        read_amount(raw, currency)  # type: ignore[arg-type]


@given(
    units=st.integers(min_value=-(10**15), max_value=10**15),
    currency=st.sampled_from(CURRENCIES),
    extra_zeros=st.integers(min_value=0, max_value=4),
)
def test_any_spelling_of_whole_minor_units_reads_exactly(
    units: int, currency: str, extra_zeros: int
) -> None:
    written = Money.from_minor(units, currency).amount.quantize(
        Decimal(1).scaleb(-minor_unit_exponent(currency) - extra_zeros)
    )
    money, inexact = read_amount(written, currency)
    assert inexact is None
    assert money.minor_units == units
    assert money.amount.as_tuple().exponent == -minor_unit_exponent(currency)


# --- ISO 4217: every active code, with its own decimals ----------------------------------

@pytest.mark.parametrize(
    ("currency", "exponent"),
    [("USD", 2), ("BRL", 2), ("EUR", 2), ("JPY", 0), ("CLP", 0), ("KRW", 0), ("ISK", 0),
     ("XOF", 0), ("KWD", 3), ("BHD", 3), ("JOD", 3), ("OMR", 3), ("TND", 3), ("IQD", 3),
     ("LYD", 3), ("CLF", 4), ("UYW", 4), ("UYI", 0), ("MGA", 2), ("MRU", 2)],
)
def test_minor_unit_exponents_follow_iso_4217(currency: str, exponent: int) -> None:
    assert minor_unit_exponent(currency) == exponent


def test_the_table_holds_only_well_formed_codes_each_once() -> None:
    from payrelay.domain.currencies import ISO_4217_EXPONENTS

    assert len(ISO_4217_EXPONENTS) > 150
    assert all(len(c) == 3 and c.isascii() and c.isupper() for c in ISO_4217_EXPONENTS)
    assert set(ISO_4217_EXPONENTS.values()) == {0, 2, 3, 4}


@pytest.mark.parametrize("currency", ["QQQ", "XAU", "XXX", "XTS", "HRK", "ABC"])
def test_a_code_that_is_no_active_currency_is_no_money(currency: str) -> None:
    with pytest.raises(InvalidMoney, match="ISO 4217"):
        Money.parse("10", currency)
    with pytest.raises(InvalidMoney):
        minor_unit_exponent(currency)


# --- what a client asks for: decimal text, exact, within range ---------------------------

@pytest.mark.parametrize(
    ("raw", "currency", "units"),
    [("10.50", "BRL", 1050), ("0", "BRL", 0), ("1500.0", "CLP", 1500), ("1.234", "KWD", 1234),
     ("9999999999999.99", "BRL", MAX_MINOR_UNITS), ("999999999999999", "JPY", MAX_MINOR_UNITS),
     ("99999999999.9999", "CLF", MAX_MINOR_UNITS)],
)
def test_parse_requested_takes_exact_text_up_to_the_maximum(
    raw: str, currency: str, units: int
) -> None:
    assert Money.parse_requested(raw, currency).minor_units == units


@pytest.mark.parametrize(
    ("raw", "currency"),
    [("10000000000000.00", "BRL"), ("1000000000000000", "JPY"), ("92233720368547758.08", "BRL"),
     ("1" * 20, "BRL"), ("10.005", "BRL"), ("1.5", "JPY"), ("1.2345", "KWD"),
     ("-1.00", "BRL"), ("+1.00", "BRL"), ("1e3", "BRL"), ("1.", "BRL"), (".5", "BRL"),
     (" 1", "BRL"), ("1_000", "BRL"), ("١٢", "BRL"), ("NaN", "BRL"), ("", "BRL"),
     ("10.00", "QQQ")],
)
def test_parse_requested_refuses_what_is_not_exact_plain_text_in_range(
    raw: str, currency: str
) -> None:
    with pytest.raises(InvalidMoney):
        Money.parse_requested(raw, currency)


@pytest.mark.parametrize("raw", [10, Decimal("10"), 10.5])
def test_parse_requested_takes_text_only(raw: object) -> None:
    with pytest.raises(InvalidMoney, match="decimal text"):
        Money.parse_requested(raw, "BRL")  # type: ignore[arg-type]


@given(units=st.integers(min_value=0, max_value=MAX_MINOR_UNITS),
       currency=st.sampled_from([*CURRENCIES, "KWD", "CLF"]))
def test_every_amount_up_to_the_maximum_round_trips_through_a_double(
    units: int, currency: str
) -> None:
    # Why 15 digits: a gateway that reads the JSON number as a double reads the same value.
    text = str(Money.from_minor(units, currency).amount)
    assert Decimal(repr(float(text))) == Decimal(text)
    assert Money.parse_requested(text, currency).minor_units == units
