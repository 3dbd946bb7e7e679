"""The reference orders service: create, read, cancel, and ask for a checkout link."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from payrelay.domain.errors import Conflict, IllegalTransition, InvalidMoney, NotFound
from payrelay.domain.money import Money
from payrelay.domain.order import Order, OrderStatus
from payrelay.ports import Checkout, Clock, OrderLine, OrdersUnitOfWork, PaymentsClient


class OrderService:
    def __init__(self, *, uow: OrdersUnitOfWork, payments: PaymentsClient, clock: Clock) -> None:
        self._uow = uow
        self._payments = payments
        self._clock = clock

    async def create(
        self, *, lines: Sequence[OrderLine], total: Money, description: str = ""
    ) -> Order:
        if not lines:
            raise InvalidMoney("an order needs at least one item")
        if any(line.unit_price.currency != total.currency for line in lines):
            raise InvalidMoney("every item must be priced in the order's currency")
        computed = sum((line.unit_price.amount * line.quantity for line in lines), start=0)
        if computed != total.amount:
            raise InvalidMoney(f"total {total} does not match the items ({computed})")
        if total.amount <= 0:
            raise InvalidMoney("an order's total must be positive")
        # At the currency's exponent, as it reads back from storage: "1500.0" CLP is 1500.
        order = Order(
            order_id=str(uuid.uuid4()),
            status=OrderStatus.PENDING_PAYMENT,
            total=total.normalized(),
        )
        async with self._uow.begin() as tx:
            now = self._clock()
            await tx.orders.add(order, lines, description=description, now=now)
            await tx.timeline.record(
                "order.created", at=now, order_id=order.order_id, payment_id=None,
                detail=str(order.total),
            )
        return order

    async def get(self, order_id: str) -> Order:
        async with self._uow.begin() as tx:
            order = await tx.orders.get(order_id)
        if order is None:
            raise NotFound(f"no order {order_id}")
        return order

    async def cancel(self, order_id: str) -> Order:
        """Cancel a pending order. Cancelling a cancelled order answers as the first time did:
        a client whose answer was lost (a dropped connection, a killed API) retries safely."""
        async with self._uow.begin() as tx:
            order = await tx.orders.get(order_id, for_update=True)
            if order is None:
                raise NotFound(f"no order {order_id}")
            if order.status is OrderStatus.CANCELLED:
                return order
            try:
                cancelled = order.cancel()
            except IllegalTransition as exc:
                raise Conflict(f"order {order_id} is {order.status.value}: cannot cancel") from exc
            now = self._clock()
            await tx.orders.save(cancelled, expected_version=order.version, now=now)
            await tx.timeline.record(
                "order.cancelled", at=now, order_id=order_id, payment_id=None
            )
        return cancelled

    async def expire_unpaid(self, *, older_than: timedelta, limit: int = 200) -> int:
        """Expire orders nobody paid in time; a payment arriving later is refunded."""
        async with self._uow.begin() as tx:
            now = self._clock()
            expired = 0
            for order_id in await tx.orders.unpaid_since(now - older_than, limit=limit):
                order = await tx.orders.get(order_id, for_update=True)
                if order is None or order.status is not OrderStatus.PENDING_PAYMENT:
                    continue  # paid meanwhile: the lock above made us see it
                await tx.orders.save(order.expire(), expected_version=order.version, now=now)
                await tx.timeline.record("order.expired", at=now, order_id=order_id,
                                         payment_id=None)
                expired += 1
        return expired

    async def checkout(self, order_id: str) -> Checkout:
        order = await self.get(order_id)
        if order.status is not OrderStatus.PENDING_PAYMENT:
            raise Conflict(f"order {order_id} is {order.status.value}: nothing to pay")
        return await self._payments.checkout(
            order_id=order_id, amount=order.total, description=f"order {order_id}"
        )
