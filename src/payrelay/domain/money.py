"""Money as a Decimal amount with a currency; never a float.

An amount is judged by its value, not by how it was written: MercadoPago writes JSON numbers
(`1500.0` for a CLP payment, `25.1` for ARS), and those are exact amounts. A Money keeps the
scale it was written with (the simulator, like a gateway, writes amounts back as it holds
them); payrelay reads a gateway's amount with `read_amount`, which gives it at the
currency's exponent (`1500` CLP, `25.10` ARS). A value finer than the currency's minor unit
(`25.123` ARS) is no Money at all: `read_amount` reports it as a problem to hold for a
person, rather than an error to retry.

What a client asks payrelay to charge is held to a stricter rule (`parse_requested`): a
plain decimal string, in an active ISO 4217 currency, exact in it, and at most
`MAX_MINOR_UNITS`, so that it is refused before any gateway call rather than after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, Context, Decimal, InvalidOperation
from enum import StrEnum

from payrelay.domain.currencies import ISO_4217_EXPONENTS
from payrelay.domain.errors import InvalidMoney

MAX_MINOR_UNITS = 10**15 - 1
"""The largest amount a client may ask for, in minor units (9,999,999,999,999.99 BRL).

Fifteen digits: far inside the BigInteger columns that store minor units (2**63 - 1), and
few enough that the JSON number payrelay writes to the gateway survives any reader that
parses it as a double (15 significant digits always round-trip), so no gateway is asked to
charge an amount it would read back differently.
"""

AMOUNT_PATTERN = r"^[0-9]{1,15}(\.[0-9]{1,20})?$"
"""How a client writes an amount: digits, optionally a point and more digits ("10.50").

At most 15 digits before the point, as no currency takes more under MAX_MINOR_UNITS."""
_AMOUNT_TEXT = re.compile(AMOUNT_PATTERN)

# Our own context, not the thread's: quantize must never round silently or lose digits.
_EXACT = Context(prec=40, traps=[InvalidOperation])


def minor_unit_exponent(currency: str) -> int:
    """Decimals of the currency's minor unit (USD 2, JPY 0, KWD 3); unknown codes raise."""
    try:
        return ISO_4217_EXPONENTS[currency]
    except KeyError:
        raise InvalidMoney(f"{currency!r} is not an active ISO 4217 currency code") from None


def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_unit_exponent(currency))


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in one currency, a whole number of its minor units, however written."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        code = self.currency
        if not (len(code) == 3 and code.isascii() and code.isalpha() and code.isupper()):
            raise InvalidMoney(f"currency must be a 3-letter ISO 4217 code, got {self.currency!r}")
        minor_unit_exponent(code)  # an unknown code raises: its decimals are not guessed
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite():
            raise InvalidMoney(f"amount must be a finite Decimal, got {self.amount!r}")
        # By value: "1500.0" and "1.5E+3" CLP are 1500 pesos; "1500.5" CLP is no amount.
        if _at_exponent(self.amount, code) != self.amount:
            raise InvalidMoney(
                f"{self.amount} is finer than {code} allows "
                f"({minor_unit_exponent(code)} decimals)"
            )

    @classmethod
    def parse(cls, amount: str | int | Decimal, currency: str) -> Money:
        """Build from a decimal string such as "10.50"; floats are refused."""
        return cls(_decimal(amount), currency)

    @classmethod
    def parse_requested(cls, amount: str, currency: str) -> Money:
        """An amount a client asks payrelay for: plain decimal text, exact, within range.

        >>> Money.parse_requested("10.50", "BRL")
        Money(amount=Decimal('10.50'), currency='BRL')

        JSON numbers never get here (the API takes strings only), nor do "1e3", "-5" or
        "10,50"; "10.505" BRL, "QQQ" and more than MAX_MINOR_UNITS raise InvalidMoney.
        """
        if not isinstance(amount, str) or not _AMOUNT_TEXT.fullmatch(amount):
            raise InvalidMoney(f"amount must be decimal text such as \"10.50\", got {amount!r}")
        money = cls(Decimal(amount), currency)
        if money.minor_units > MAX_MINOR_UNITS:
            raise InvalidMoney(
                f"{money} is more than payrelay takes "
                f"({cls.from_minor(MAX_MINOR_UNITS, currency)})"
            )
        return money

    @classmethod
    def from_minor(cls, units: int, currency: str) -> Money:
        return cls(Decimal(units).scaleb(-minor_unit_exponent(currency)), currency)

    def normalized(self) -> Money:
        """The same value at the currency's exponent: 1500.0 CLP -> 1500, 25.1 ARS -> 25.10."""
        return Money(_at_exponent(self.amount, self.currency), self.currency)

    @property
    def minor_units(self) -> int:
        return int(self.amount.scaleb(minor_unit_exponent(self.currency)))

    def same_value(self, other: Money) -> bool:
        """Equal in value and currency, whatever the written scale ("10" vs "10.00")."""
        return self.currency == other.currency and self.amount == other.amount

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


class AmountProblem(StrEnum):
    """Why an amount a gateway reported is not an exact Money; the value is the reason."""

    PRECISION = "amount_precision"
    """Finer than the currency's minor unit (25.123 ARS, 1500.5 CLP): no Money is exact."""


@dataclass(frozen=True, slots=True)
class InexactAmount:
    """A reported amount no Money holds exactly: the text as written, and what is wrong."""

    written: str
    problem: AmountProblem


def read_amount(amount: str | int | Decimal, currency: str) -> tuple[Money, InexactAmount | None]:
    """A gateway's amount by value; a finer one is kept as a problem, not raised.

    The payment behind it is real, so it must be stored and put before a person rather than
    refused for ever. The Money returned for it is the value rounded toward zero to the
    minor unit (never more than was charged), and only the InexactAmount beside it says so:

    >>> read_amount("25.123", "ARS") == (
    ...     Money.parse("25.12", "ARS"), InexactAmount("25.123", AmountProblem.PRECISION))
    True
    """
    value = _decimal(amount)
    if not value.is_finite():
        raise InvalidMoney(f"amount must be finite, got {amount!r}")
    exact = _at_exponent(value, currency)
    if exact == value:
        return Money(exact, currency), None
    below = _at_exponent(value, currency, rounding=ROUND_DOWN)
    return Money(below, currency), InexactAmount(str(value), AmountProblem.PRECISION)


def _at_exponent(amount: Decimal, currency: str, *, rounding: str | None = None) -> Decimal:
    """`amount` quantized to the currency's minor unit (rounded, if it is finer)."""
    try:
        return amount.quantize(_quantum(currency), rounding=rounding, context=_EXACT)
    except InvalidOperation as exc:
        raise InvalidMoney(f"{amount} is too large an amount") from exc


def _decimal(amount: str | int | Decimal) -> Decimal:
    if isinstance(amount, float):
        raise InvalidMoney("amounts are decimal strings or Decimal, never float")
    try:
        return Decimal(amount)
    except (InvalidOperation, ValueError, TypeError) as exc:
        raise InvalidMoney(f"not a decimal amount: {amount!r}") from exc
