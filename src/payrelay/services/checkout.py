"""Checkout: one gateway preference per order, whoever asks and however often."""

from __future__ import annotations

from payrelay.domain.errors import Conflict
from payrelay.domain.money import Money
from payrelay.ports import Checkout, Clock, Gateway, PaymentsUnitOfWork


class CheckoutService:
    def __init__(
        self, *, uow: PaymentsUnitOfWork, gateway: Gateway, clock: Clock, notification_url: str
    ) -> None:
        self._uow = uow
        self._gateway = gateway
        self._clock = clock
        self._notification_url = notification_url

    async def checkout(self, *, order_id: str, amount: Money, description: str) -> Checkout:
        """The order's checkout link; asking again returns the same one (no second charge path).

        The gateway call carries an idempotency key derived from the order, so two concurrent
        first calls also get one preference between them.
        """
        async with self._uow.begin() as tx:
            existing = await tx.checkouts.get(order_id)
        if existing is None:
            created = await self._gateway.create_checkout(
                order_id=order_id,
                amount=amount,
                description=description,
                notification_url=self._notification_url,
            )
            async with self._uow.begin() as tx:
                existing = await tx.checkouts.add(created, now=self._clock())
                await tx.timeline.record(
                    "checkout.created",
                    at=self._clock(),
                    order_id=order_id,
                    payment_id=None,
                    detail=f"preference {existing.preference_id} for {amount}",
                )
        if not existing.amount.same_value(amount):
            raise Conflict(
                f"order {order_id} already has a checkout for {existing.amount}, not {amount}"
            )
        return existing
