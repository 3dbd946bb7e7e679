"""Money as a Decimal amount with a currency; never a float."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from payrelay.domain.errors import InvalidMoney

# ISO 4217 minor-unit exponents that differ from the usual two.
_EXPONENTS: dict[str, int] = {"CLP": 0, "JPY": 0, "KRW": 0, "PYG": 0, "UYI": 0, "VND": 0}


def minor_unit_exponent(currency: str) -> int:
    return _EXPONENTS.get(currency, 2)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in one currency, exact to the currency's minor unit."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        code = self.currency
        if not (len(code) == 3 and code.isascii() and code.isalpha() and code.isupper()):
            raise InvalidMoney(f"currency must be a 3-letter ISO 4217 code, got {self.currency!r}")
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite():
            raise InvalidMoney(f"amount must be a finite Decimal, got {self.amount!r}")
        exponent = self.amount.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > minor_unit_exponent(self.currency):
            raise InvalidMoney(
                f"{self.amount} has more decimals than {self.currency} allows "
                f"({minor_unit_exponent(self.currency)})"
            )

    @classmethod
    def parse(cls, amount: str | int | Decimal, currency: str) -> Money:
        """Build from a decimal string such as "10.50"; floats are refused."""
        if isinstance(amount, float):
            raise InvalidMoney("amounts are decimal strings or Decimal, never float")
        try:
            value = Decimal(amount)
        except (InvalidOperation, ValueError) as exc:
            raise InvalidMoney(f"not a decimal amount: {amount!r}") from exc
        return cls(value, currency)

    @classmethod
    def from_minor(cls, units: int, currency: str) -> Money:
        return cls(Decimal(units).scaleb(-minor_unit_exponent(currency)), currency)

    @property
    def minor_units(self) -> int:
        return int(self.amount.scaleb(minor_unit_exponent(self.currency)))

    def same_value(self, other: Money) -> bool:
        """Equal in value and currency, whatever the written scale ("10" vs "10.00")."""
        return self.currency == other.currency and self.amount == other.amount

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
