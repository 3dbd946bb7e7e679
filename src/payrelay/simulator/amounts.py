"""Amounts as the simulator takes them: Decimal, positive, exact in their currency.

The simulator's own rule, not payrelay's `Money`: an amount is judged by its value
(`1500.0` CLP is 1500 pesos, `1500.5` CLP is no amount), in a currency whose decimals it
knows. It is then held as written, only in plain notation (`1.5E+3` is held as `1500`),
because MercadoPago writes its amounts as plain JSON numbers (`1500.0`, `25.1`).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from types import MappingProxyType

from payrelay.simulator.errors import BadRequest

__all__ = ["CURRENCY_DECIMALS", "currency_decimals", "parse_amount"]

_MAX_DIGITS = 40
"""Digits an amount may have once written at its currency's decimals."""

# ISO 4217's active currencies by the decimals of their minor unit; two unless listed.
_NO_DECIMALS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DECIMALS = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_DECIMALS = "CLF UYW"
_TWO_DECIMALS = """
AED AFN ALL AMD ANG AOA AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BSD BTN BWP BYN BZD
CAD CDF CHE CHF CHW CNY CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS
GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR
LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MYR MZN NAD NGN NIO NOK NPR NZD PAB
PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP
SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UZS VED VES WST XCD XCG YER ZAR ZMW ZWG
ARS BRL COP MXN MXV PEN UYU COU
"""

CURRENCY_DECIMALS: MappingProxyType[str, int] = MappingProxyType(
    {
        code: decimals
        for codes, decimals in (
            (_TWO_DECIMALS, 2), (_NO_DECIMALS, 0), (_THREE_DECIMALS, 3), (_FOUR_DECIMALS, 4)
        )
        for code in codes.split()
    }
)
"""Currency code -> decimals of its minor unit: ARS 2, CLP 0, KWD 3, CLF 4."""


def currency_decimals(currency: str) -> int:
    """The decimals of `currency`, or BadRequest for a code the simulator does not know."""
    decimals = CURRENCY_DECIMALS.get(currency)
    if decimals is None:
        raise BadRequest(f"{currency!r} is not a currency the simulator knows")
    return decimals


def parse_amount(value: object, currency: str, *, name: str) -> Decimal:
    """A positive amount exact in `currency`, from a JSON number (Decimal), int or string."""
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise BadRequest(f"{name} must be a number")  # a float included: never money
    decimals = currency_decimals(currency)
    amount = _decimal(value, name)
    if not amount.is_finite():
        raise BadRequest(f"invalid {name}: {value!r} is not a finite amount")
    if amount <= 0:
        raise BadRequest(f"{name} must be positive")
    if _finest_decimal(amount) > decimals:
        raise BadRequest(f"invalid {name}: {amount} is finer than {currency} allows "
                         f"({decimals} decimals)")
    if amount.adjusted() + 1 + decimals > _MAX_DIGITS:
        raise BadRequest(f"invalid {name}: {amount} is too large an amount")
    return Decimal(format(amount, "f"))  # plain notation, same digits: 1.5E+3 -> 1500


def _decimal(value: int | str | Decimal, name: str) -> Decimal:
    try:
        return Decimal(value)
    except (InvalidOperation, ValueError) as exc:
        raise BadRequest(f"invalid {name}: not a decimal amount: {value!r}") from exc


def _finest_decimal(amount: Decimal) -> int:
    """How many decimals the value needs, trailing zeros aside: 25.10 -> 1, 1.5E+3 -> 0."""
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite: checked by the caller
    trailing_zeros = len(digits) - len(bytes(digits).rstrip(b"\x00"))
    return max(0, -(exponent + trailing_zeros))
