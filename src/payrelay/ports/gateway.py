"""The payment gateway's API, reduced to what payrelay asks of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from payrelay.domain.checkout import Checkout
from payrelay.domain.money import Money
from payrelay.domain.payment import PaymentSnapshot


@dataclass(frozen=True, slots=True)
class PaymentPage:
    """One page of a gateway search: `total` counts the matches of every page together,
    `offset` is where this page starts among them."""

    payments: list[PaymentSnapshot]
    total: int
    offset: int
    unreadable: list[tuple[str, datetime]] = field(default_factory=list)
    """(id, date_last_updated) of results payrelay could not read otherwise: each is handed
    to the processor, whose retry decision gives it up with the reason, and the sweep
    moves past it, so one odd payment never stalls a sweep."""

    @property
    def dates(self) -> list[datetime]:
        """The last-update dates of every result of the page, read or not, in order."""
        return sorted([p.date_last_updated for p in self.payments]
                      + [when for _, when in self.unreadable])


class Gateway(Protocol):
    """A payment gateway's API, reduced to what payrelay asks of it.

    Every method raises GatewayUnavailable (worth retrying) or GatewayRejected (the gateway
    refused the request), never a client library's exception.
    """

    provider: str

    async def create_checkout(
        self, *, order_id: str, amount: Money, description: str, notification_url: str
    ) -> Checkout: ...

    async def fetch_payment(self, payment_id: str) -> PaymentSnapshot: ...

    async def search_payments(self, order_id: str) -> list[PaymentSnapshot]:
        """Every payment made for the order, oldest first: all pages are read, or it raises."""
        ...

    async def sweep_payments(
        self, *, updated_from: datetime, updated_to: datetime, offset: int, limit: int
    ) -> PaymentPage:
        """One page of the payments last updated within [updated_from, updated_to], both
        ends included, in ascending date_last_updated (ties always in the same order).

        `offset` skips that many of them; a new payment may be listed only some time after
        it was made, which the caller covers by reading again a little before where it was.
        """
        ...

    async def refund(self, payment_id: str, *, amount: Money, idempotency_key: str) -> str:
        """Refund `amount`; the same key never refunds twice. Returns the refund's id."""
        ...
