"""Field types that payrelay's HTTP APIs share: each rule written once, and shown in OpenAPI.

Amounts are decimal strings ("10.50"), never JSON numbers: a JSON number is parsed as a
double by most clients before payrelay ever sees it, so `12345678901234567.8` would arrive
as some other amount. A JSON number where an amount belongs is a 422, as is an amount that
`Money.parse_requested` refuses (too precise for its currency, past `MAX_MINOR_UNITS`) and
a currency that is not an active ISO 4217 code.

Ids and free text are bounded to what the columns behind them hold on every database, and
to characters every hop can carry: an order id travels in the gateway's idempotency header,
so it is printable ASCII without spaces (a non-ASCII id is a 422, not a 500 at the header).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from payrelay.domain.money import AMOUNT_PATTERN, minor_unit_exponent

__all__ = ["AmountText", "CurrencyCode", "Description", "OrderId", "Sku"]


def _active_currency(code: str) -> str:
    minor_unit_exponent(code)  # InvalidMoney is a ValueError: pydantic makes it a 422
    return code


AmountText = Annotated[str, StringConstraints(pattern=AMOUNT_PATTERN, max_length=41)]
"""A non-negative decimal string such as "10.50"; checked against its currency later."""

CurrencyCode = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{3}$"), AfterValidator(_active_currency)
]
"""An active ISO 4217 code ("BRL"); "QQQ" is refused."""

OrderId = Annotated[str, StringConstraints(pattern=r"^[!-~]{1,64}$")]
"""1-64 printable ASCII characters, no spaces: the order_id columns are varchar(64)."""

# No control characters (NUL among them): PostgreSQL text cannot hold a NUL.
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

Description = Annotated[str, StringConstraints(max_length=256, pattern=_PRINTABLE)]
"""Free text for people, at most 256 characters, no control characters."""

Sku = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=_PRINTABLE)]
