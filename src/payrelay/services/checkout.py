"""Checkout: one gateway preference per order, whoever asks and however often."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from payrelay.domain.errors import Conflict
from payrelay.domain.money import Money
from payrelay.ports import Checkout, Clock, Gateway, PaymentsUnitOfWork
from payrelay.services.ingest import ORDER_HINT_PARAM


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
                notification_url=notification_url_for(self._notification_url, order_id),
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


def notification_url_for(base: str, order_id: str) -> str:
    """`base` with `order_id=<order>` in its query string, which the gateway keeps and
    appends its own parameters to: a webhook about a payment the gateway then fails to
    return still names its order, for `payrelay trace` (a hint, unsigned; see ingest)."""
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k != ORDER_HINT_PARAM]
    query.append((ORDER_HINT_PARAM, order_id))
    return urlunsplit(parts._replace(query=urlencode(query)))
