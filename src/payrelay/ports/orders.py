"""The orders database, and how the orders service reaches the payments service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from payrelay.domain.checkout import Checkout
from payrelay.domain.money import Money
from payrelay.domain.order import Order, OrderLine, PaymentRecord
from payrelay.ports.messaging import MessagingTx


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """An order to write, and the version the caller read it at."""

    order: Order
    expected_version: int


class Orders(Protocol):
    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None: ...

    async def get_many(
        self, order_ids: Sequence[str], *, for_update: bool = False
    ) -> Mapping[str, Order]:
        """Those of `order_ids` that exist, in one query; `for_update` locks them in id
        order, so two transactions locking overlapping batches never deadlock."""
        ...

    async def add(
        self, order: Order, lines: Sequence[OrderLine], *, description: str, now: datetime
    ) -> None: ...

    async def save(self, order: Order, *, expected_version: int, now: datetime) -> None:
        """Write `order` if the stored version is still `expected_version`, the one the
        caller read: one event may move an order several versions (a refund seen first
        pays, then refunds). Otherwise raise ConcurrentUpdate, having written nothing."""
        ...

    async def save_many(self, updates: Sequence[OrderUpdate], *, now: datetime) -> None:
        """`save` for a batch in one statement: ConcurrentUpdate if any order moved on."""
        ...

    async def unpaid_since(self, cutoff: datetime, *, limit: int) -> list[str]:
        """Ids of orders still waiting for payment that were created before `cutoff`."""
        ...

    async def get_payment(self, payment_id: str) -> PaymentRecord | None: ...

    async def get_payments(self, payment_ids: Sequence[str]) -> Mapping[str, PaymentRecord]:
        ...

    async def save_payment(self, record: PaymentRecord) -> None: ...

    async def save_payments(self, records: Sequence[PaymentRecord]) -> None:
        """Insert or update each record, in one statement; one record per payment."""
        ...


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
