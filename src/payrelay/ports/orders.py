"""The orders database, and how the orders service reaches the payments service."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from payrelay.domain.checkout import Checkout
from payrelay.domain.money import Money
from payrelay.domain.order import Order, OrderLine, PaymentRecord
from payrelay.ports.messaging import MessagingTx


class Orders(Protocol):
    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None: ...

    async def add(
        self, order: Order, lines: Sequence[OrderLine], *, description: str, now: datetime
    ) -> None: ...

    async def save(self, order: Order, *, expected_version: int, now: datetime) -> None:
        """Write `order` if the stored version is still `expected_version`, the one the
        caller read: one event may move an order several versions (a refund seen first
        pays, then refunds). Otherwise raise ConcurrentUpdate, having written nothing."""
        ...

    async def unpaid_since(self, cutoff: datetime, *, limit: int) -> list[str]:
        """Ids of orders still waiting for payment that were created before `cutoff`."""
        ...

    async def get_payment(self, payment_id: str) -> PaymentRecord | None: ...

    async def save_payment(self, record: PaymentRecord) -> None: ...


class OrdersTx(MessagingTx, Protocol):
    @property
    def orders(self) -> Orders: ...


class OrdersUnitOfWork(Protocol):
    def begin(self) -> AbstractAsyncContextManager[OrdersTx, bool | None]: ...


class PaymentsClient(Protocol):
    """How the orders service asks the payments service for a checkout link."""

    async def checkout(
        self, *, order_id: str, amount: Money, description: str
    ) -> Checkout: ...
