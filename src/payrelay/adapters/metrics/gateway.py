"""A Gateway that times every call into the metrics, whichever gateway it wraps."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from datetime import datetime
from typing import TypeVar

from payrelay.domain.checkout import Checkout
from payrelay.domain.errors import GatewayError
from payrelay.domain.money import Money
from payrelay.domain.payment import PaymentSnapshot
from payrelay.ports import Gateway
from payrelay.ports.gateway import PaymentPage
from payrelay.ports.metrics import Metrics

__all__ = ["TimedGateway"]

T = TypeVar("T")


class TimedGateway:
    def __init__(self, gateway: Gateway, metrics: Metrics) -> None:
        self._gateway = gateway
        self._metrics = metrics
        self.provider = gateway.provider

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        error: str | None = None
        try:
            return await call
        except GatewayError as exc:
            error = type(exc).__name__
            raise
        finally:
            self._metrics.gateway_called(
                operation=operation, seconds=time.perf_counter() - started, error=error
            )

    async def create_checkout(
        self, *, order_id: str, amount: Money, description: str, notification_url: str
    ) -> Checkout:
        return await self._timed("create_checkout", self._gateway.create_checkout(
            order_id=order_id, amount=amount, description=description,
            notification_url=notification_url,
        ))

    async def fetch_payment(self, payment_id: str) -> PaymentSnapshot:
        return await self._timed("fetch_payment", self._gateway.fetch_payment(payment_id))

    async def search_payments(self, order_id: str) -> list[PaymentSnapshot]:
        return await self._timed("search_payments", self._gateway.search_payments(order_id))

    async def sweep_payments(
        self, *, updated_from: datetime, updated_to: datetime, offset: int, limit: int
    ) -> PaymentPage:
        return await self._timed("sweep_payments", self._gateway.sweep_payments(
            updated_from=updated_from, updated_to=updated_to, offset=offset, limit=limit,
        ))

    async def refund(self, payment_id: str, *, amount: Money, idempotency_key: str) -> str:
        return await self._timed("refund", self._gateway.refund(
            payment_id, amount=amount, idempotency_key=idempotency_key,
        ))
