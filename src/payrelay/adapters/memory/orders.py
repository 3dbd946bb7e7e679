"""The orders database in memory: orders and their lines, payment records, messages."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime

from payrelay.adapters.memory.messaging import (
    MemoryDeadLetters,
    MemoryInbox,
    MemoryOutbox,
    MemoryOutboxRelayStore,
    MemoryTimeline,
    MessagingState,
)
from payrelay.adapters.memory.store import MemoryDatabase
from payrelay.domain.errors import ConcurrentUpdate, UnstorableRecord
from payrelay.domain.order import Order, OrderStatus, PaymentRecord
from payrelay.ports import Clock, OrderLine, OrderUpdate


@dataclasses.dataclass(frozen=True, kw_only=True)
class OrderRow:
    order: Order
    lines: tuple[OrderLine, ...]
    description: str
    created_at: datetime
    updated_at: datetime
    paid_at: datetime | None = None


@dataclasses.dataclass
class OrdersState(MessagingState):
    orders: dict[str, OrderRow] = dataclasses.field(default_factory=dict)
    payments: dict[str, PaymentRecord] = dataclasses.field(default_factory=dict)


OrdersDatabase = MemoryDatabase[OrdersState]


def orders_database() -> OrdersDatabase:
    return MemoryDatabase(OrdersState())


class MemoryOrders:
    def __init__(self, state: OrdersState) -> None:
        self._state = state

    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None:
        # for_update needs nothing here: transactions already run one at a time.
        row = self._state.orders.get(order_id)
        return None if row is None else row.order

    async def get_many(
        self, order_ids: Sequence[str], *, for_update: bool = False
    ) -> Mapping[str, Order]:
        rows = self._state.orders
        return {o: rows[o].order for o in order_ids if o in rows}

    async def add(
        self, order: Order, lines: Sequence[OrderLine], *, description: str, now: datetime
    ) -> None:
        if order.order_id in self._state.orders:  # the primary key
            raise UnstorableRecord(f"order {order.order_id} already exists")
        self._state.orders[order.order_id] = OrderRow(
            order=order, lines=tuple(lines), description=description,
            created_at=now, updated_at=now,
        )

    async def save(self, order: Order, *, expected_version: int, now: datetime) -> None:
        row = self._state.orders.get(order.order_id)
        if row is None or row.order.version != expected_version:
            raise ConcurrentUpdate(
                f"order {order.order_id} is no longer at version {expected_version}"
            )
        paid_at = now if order.status is OrderStatus.PAID else row.paid_at
        self._state.orders[order.order_id] = dataclasses.replace(
            row, order=order, updated_at=now, paid_at=paid_at
        )

    async def save_many(self, updates: Sequence[OrderUpdate], *, now: datetime) -> None:
        rows = self._state.orders
        stale = [u for u in updates
                 if u.order.order_id not in rows
                 or rows[u.order.order_id].order.version != u.expected_version]
        if stale:  # checked first: nothing is written, as one statement would
            raise ConcurrentUpdate(
                f"order {stale[0].order.order_id} is no longer at version "
                f"{stale[0].expected_version}"
            )
        for u in updates:
            await self.save(u.order, expected_version=u.expected_version, now=now)

    async def unpaid_since(self, cutoff: datetime, *, limit: int) -> list[str]:
        waiting = sorted(
            (row for row in self._state.orders.values()
             if row.order.status is OrderStatus.PENDING_PAYMENT and row.created_at < cutoff),
            key=lambda row: row.created_at,
        )
        return [row.order.order_id for row in waiting[:limit]]

    async def get_payment(self, payment_id: str) -> PaymentRecord | None:
        return self._state.payments.get(payment_id)

    async def get_payments(self, payment_ids: Sequence[str]) -> Mapping[str, PaymentRecord]:
        payments = self._state.payments
        return {p: payments[p] for p in payment_ids if p in payments}

    async def save_payment(self, record: PaymentRecord) -> None:
        self._state.payments[record.payment_id] = record

    async def save_payments(self, records: Sequence[PaymentRecord]) -> None:
        if len({r.payment_id for r in records}) != len(records):
            raise UnstorableRecord("one statement cannot write a payment twice")
        for record in records:
            self._state.payments[record.payment_id] = record


class MemoryOrdersTx:
    def __init__(self, state: OrdersState, now: datetime) -> None:
        self.state = state
        self.orders = MemoryOrders(state)
        self.outbox = MemoryOutbox(state, now=now)
        self.inbox = MemoryInbox(state)
        self.timeline = MemoryTimeline(state)
        self.dead_letters = MemoryDeadLetters(state)


class MemoryOrdersUnitOfWork:
    def __init__(self, db: OrdersDatabase, clock: Clock) -> None:
        self.db = db
        self._clock = clock
        self.relay_store = MemoryOutboxRelayStore(db)

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[MemoryOrdersTx]:
        async with self.db.transaction() as state:
            yield MemoryOrdersTx(state, self._clock())
