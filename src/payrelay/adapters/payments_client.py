"""The orders service's HTTP client for the payments service's `POST /checkout`.

It calls the payments service's internal listener (`PAYRELAY_PAYMENTS_URL`) with the
service token (`PAYRELAY_SERVICE_TOKEN`) as a bearer token.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import httpx

from payrelay.domain.errors import Conflict, GatewayRejected, GatewayUnavailable
from payrelay.domain.money import Money
from payrelay.ports import Checkout


class HttpPaymentsClient:
    def __init__(self, client: httpx.AsyncClient, *, token: Callable[[], str]) -> None:
        self._client = client
        self._token = token

    async def checkout(self, *, order_id: str, amount: Money, description: str) -> Checkout:
        try:
            response = await self._client.post(
                "/checkout",
                json={
                    "order_id": order_id,
                    "amount": str(amount.amount),
                    "currency": amount.currency,
                    "description": description,
                },
                headers={"authorization": f"Bearer {self._token()}"},
            )
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"payments service unreachable: {type(exc).__name__}") from exc
        if response.status_code == 409:
            raise Conflict(response.json().get("detail", "checkout conflict"))
        if response.status_code == 401:
            # Retrying will not help until a person sets the same token on both sides.
            raise GatewayRejected(
                "payments service refused the service token: check PAYRELAY_SERVICE_TOKEN", 401
            )
        if response.status_code != 200:
            raise GatewayUnavailable(f"payments service answered HTTP {response.status_code}")
        data = response.json()
        return Checkout(
            order_id=data["order_id"],
            provider=data["provider"],
            preference_id=data["preference_id"],
            init_point=data["init_point"],
            amount=Money(Decimal(data["amount"]), data["currency"]),
        )
