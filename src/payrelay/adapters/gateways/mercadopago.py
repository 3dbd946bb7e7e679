"""MercadoPago's REST API as a `Gateway` (the bundled simulator speaks the same API).

Only the fields payrelay needs leave this module: ids, status and detail, amounts,
currency, dates and the external reference. Payer and card data are never read.

Amounts cross the wire as exact JSON numbers both ways: simplejson with `use_decimal=True`
writes a Decimal digit for digit and reads every fractional number as a Decimal, so no
amount ever passes through float.

The HTTP is a wire (`wire.py`): aiohttp in production, an httpx client in tests.

Searches page with limit/offset: MercadoPago answers 30 results unless asked for more,
whatever `paging.total` says, so reading one page would miss the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import simplejson

from payrelay.adapters.gateways.wire import HttpWire, Params
from payrelay.domain.errors import GatewayRejected, GatewayUnavailable, MalformedResource
from payrelay.domain.money import Money, read_amount
from payrelay.domain.payment import PaymentSnapshot, PaymentStatus
from payrelay.ports import Checkout, PaymentPage

PROVIDER = "mercadopago"


class MercadoPagoGateway:
    provider = PROVIDER

    def __init__(
        self, wire: HttpWire, *, access_token: str, search_page_size: int = 100
    ) -> None:
        """`wire` carries the base URL and timeouts; the token is sent as a Bearer header.
        `search_page_size`: rows asked per page when searching an order's payments."""
        self._wire = wire
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self._page_size = search_page_size

    async def create_checkout(
        self, *, order_id: str, amount: Money, description: str, notification_url: str
    ) -> Checkout:
        body = {
            "items": [
                {
                    # MercadoPago refuses an item without a title; an order always has one.
                    "title": description if description.strip() else f"order {order_id}",
                    "quantity": 1,
                    "unit_price": amount.amount,
                    "currency_id": amount.currency,
                }
            ],
            "external_reference": order_id,
            "notification_url": notification_url,
        }
        data = await self._request(
            "POST",
            "/checkout/preferences",
            content=dumps_exact(body),
            headers={**self._json_headers, "X-Idempotency-Key": f"payrelay-checkout-{order_id}"},
        )
        return Checkout(
            order_id=order_id,
            provider=PROVIDER,
            preference_id=str(data["id"]),
            init_point=str(data["init_point"]),
            amount=amount,
        )

    async def fetch_payment(self, payment_id: str) -> PaymentSnapshot:
        return parse_payment(await self._request("GET", f"/v1/payments/{_segment(payment_id)}"))

    async def search_payments(self, order_id: str) -> list[PaymentSnapshot]:
        """Within MercadoPago's default window (created in the last three months)."""
        params = {"external_reference": order_id, "sort": "date_created", "criteria": "asc"}
        found: dict[str, PaymentSnapshot] = {}
        offset = 0
        while True:
            page = await self._search({**params, "offset": offset, "limit": self._page_size})
            # A payment listed late shifts the ones after it to a later page: it is then read
            # twice, never skipped (creation dates only grow), and kept once.
            found.update((p.payment_id, p) for p in page.payments)
            offset = page.offset + len(page.payments)
            if not page.payments or offset >= page.total:
                return list(found.values())

    async def sweep_payments(
        self, *, updated_from: datetime, updated_to: datetime, offset: int, limit: int
    ) -> PaymentPage:
        return await self._search(
            {
                "range": "date_last_updated",
                "begin_date": _mp_date(updated_from),
                "end_date": _mp_date(updated_to),
                "sort": "date_last_updated",
                "criteria": "asc",
                "offset": offset,
                "limit": limit,
            }
        )

    async def refund(self, payment_id: str, *, amount: Money, idempotency_key: str) -> str:
        data = await self._request(
            "POST",
            f"/v1/payments/{_segment(payment_id)}/refunds",
            content=dumps_exact({"amount": amount.amount}),
            headers={**self._json_headers, "X-Idempotency-Key": idempotency_key},
        )
        return str(data["id"])

    async def _search(self, params: dict[str, str | int]) -> PaymentPage:
        data = await self._request("GET", "/v1/payments/search", params=params)
        return parse_page(data)

    async def _request(
        self, method: str, path: str, *, content: bytes | None = None,
        headers: Mapping[str, str] | None = None, params: Params | None = None,
    ) -> dict[str, Any]:
        status, body = await self._wire.request(
            method, path, headers=headers or self._headers, content=content, params=params
        )
        if status >= 500 or status == 429:
            raise GatewayUnavailable(f"{method} {path}: HTTP {status}")
        if status >= 400:
            raise GatewayRejected(f"{method} {path}: HTTP {status}", status)
        try:
            # allow_nan: a NaN amount is a malformed payment (parse_payment refuses the
            # float it becomes), not an unreadable answer to retry.
            data = simplejson.loads(body, use_decimal=True, allow_nan=True)
        except ValueError as exc:
            raise GatewayUnavailable(f"{method} {path}: answer is not JSON") from exc
        if not isinstance(data, dict):
            raise GatewayUnavailable(f"{method} {path}: answer is not a JSON object")
        return data


def parse_payment(data: dict[str, Any]) -> PaymentSnapshot:
    """Keep only what payrelay needs from MercadoPago's payment resource.

    Amounts are JSON numbers (`1500.0` CLP, `25.1` ARS) and are read by value. One finer
    than its currency (`25.123` ARS) is a fact about the payment, not a failed fetch: it
    comes back as the snapshot's `inexact_amount`, never as GatewayUnavailable, which would
    retry it for ever.
    """
    try:
        currency = str(data["currency_id"])
        amount, inexact = read_amount(_number(data["transaction_amount"]), currency)
        # The refunded total decides nothing (the status does), so a finer one is only
        # taken rounded toward zero rather than held.
        refunded, _ = read_amount(
            _number(data.get("transaction_amount_refunded") or 0), currency
        )
        return PaymentSnapshot(
            payment_id=str(data["id"]),
            provider=PROVIDER,
            order_id=str(data["external_reference"]) if data.get("external_reference") else None,
            status=PaymentStatus(data["status"]),
            status_detail=data.get("status_detail"),
            amount=amount,
            amount_refunded=refunded,
            date_created=_when(data["date_created"]),
            date_approved=_when(data["date_approved"]) if data.get("date_approved") else None,
            date_last_updated=_when(data["date_last_updated"]),
            inexact_amount=inexact,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise MalformedResource(f"unexpected payment resource: {exc!r}") from exc


def parse_page(data: dict[str, Any]) -> PaymentPage:
    """A search answer: {"paging": {"total", "limit", "offset"}, "results": [...]}."""
    try:
        paging, results = data["paging"], data["results"]
        total, offset = paging["total"], paging["offset"]
        if not isinstance(results, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in (total, offset)
        ):
            raise TypeError("paging and results of the wrong types")
    except (KeyError, TypeError) as exc:
        raise GatewayUnavailable(f"unexpected search answer: {exc!r}") from exc
    payments, unreadable = [], []
    for item in results:
        try:
            payments.append(parse_payment(item))
        except MalformedResource:
            # Its id and date are enough to hand it on and move past it; without them the
            # page cannot be paged past, and the sweep stops here (reported, tried again).
            try:
                unreadable.append((str(int(item["id"])), _when(item["date_last_updated"])))
            except (KeyError, ValueError, TypeError) as exc:
                raise MalformedResource(f"unreadable search result: {exc!r}") from exc
    return PaymentPage(payments, total, offset, unreadable)


def _segment(resource_id: str) -> str:
    """One URL path segment: an id can never climb out of its path (`../`) or add a query.

    Ingest already refuses such ids; this holds for ids from anywhere else too. "." and
    ".." survive quoting and would be read as dot segments, so they are refused here.
    """
    if resource_id in ("", ".", ".."):
        raise GatewayRejected("not a resource id: empty or a dot segment", 400)
    return quote(resource_id, safe="")


def _mp_date(moment: datetime) -> str:
    """MercadoPago's date format, yyyy-MM-dd'T'HH:mm:ss.SSS with an offset, in UTC."""
    if moment.tzinfo is None:
        raise ValueError("search dates must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _number(value: object) -> int | Decimal | str:
    """A JSON number (or numeric text) as parsed; read_amount judges its value."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise ValueError(f"not an amount: {value!r}")
    return value


def _when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"date without offset: {value}")
    return parsed.astimezone(UTC)


def dumps_exact(value: Any) -> bytes:
    """JSON with Decimals written as exact JSON numbers (`10.10`, never `10.1` via float)."""
    return simplejson.dumps(value, use_decimal=True, separators=(",", ":")).encode()
