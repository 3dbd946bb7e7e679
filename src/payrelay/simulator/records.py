"""What the simulator remembers: preferences, payments and refunds, in MercadoPago's terms.

These are the simulator's own definitions, not payrelay's domain types: a fake that shared
the code under test's status list could not catch a mistake in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from payrelay.simulator.errors import BadRequest


class Status(StrEnum):
    """MercadoPago payment statuses."""

    PENDING = "pending"
    IN_PROCESS = "in_process"
    AUTHORIZED = "authorized"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    CHARGED_BACK = "charged_back"
    IN_MEDIATION = "in_mediation"


DEFAULT_DETAIL: dict[Status, str] = {
    Status.PENDING: "pending_waiting_payment",
    Status.IN_PROCESS: "pending_contingency",
    Status.AUTHORIZED: "pending_capture",
    Status.APPROVED: "accredited",
    Status.REJECTED: "cc_rejected_other_reason",
    Status.CANCELLED: "by_collector",
    Status.REFUNDED: "refunded",
    Status.CHARGED_BACK: "settled",
    Status.IN_MEDIATION: "in_process",
}


REFUNDABLE: frozenset[Status] = frozenset({Status.APPROVED, Status.IN_MEDIATION})


class Outcome(StrEnum):
    """What the simulated customer's payment attempt does."""

    APPROVE = "approve"
    """Approved at once; a single payment.created notification."""
    REJECT = "reject"
    """Rejected at once (cc_rejected_other_reason)."""
    PENDING = "pending"
    """Stays pending until a test moves it with set_status."""
    PENDING_THEN_APPROVE = "pending_then_approve"
    """Created pending, approved `approve_delay` seconds later: created, then updated."""


FIRST_STATUS: dict[Outcome, Status] = {
    Outcome.APPROVE: Status.APPROVED,
    Outcome.REJECT: Status.REJECTED,
    Outcome.PENDING: Status.PENDING,
    Outcome.PENDING_THEN_APPROVE: Status.PENDING,
}

# MercadoPago's test cards are told apart by the cardholder name.
CARDHOLDER: dict[Outcome, str] = {
    Outcome.APPROVE: "APRO",
    Outcome.REJECT: "OTHE",
    Outcome.PENDING: "CONT",
    Outcome.PENDING_THEN_APPROVE: "CONT",
}


@dataclass(frozen=True, slots=True)
class Item:
    title: str
    quantity: int
    unit_price: Decimal
    currency_id: str


@dataclass(frozen=True, slots=True)
class Preference:
    id: str
    items: tuple[Item, ...]
    external_reference: str | None
    notification_url: str | None
    date_created: datetime
    merchant_order_id: int
    extra: dict[str, Any] = field(default_factory=dict)
    """Other top-level fields of the request (back_urls, metadata...), echoed back."""

    @property
    def amount(self) -> Decimal:
        return sum((item.unit_price * item.quantity for item in self.items), Decimal(0))

    @property
    def currency_id(self) -> str:
        return self.items[0].currency_id


@dataclass(frozen=True, slots=True)
class Refund:
    id: int
    payment_id: int
    amount: Decimal
    date_created: datetime


@dataclass(slots=True)
class Payment:
    """A payment; mutated only by GatewaySimulator, within one event-loop step."""

    id: int
    preference: Preference
    outcome: Outcome
    status: Status
    status_detail: str
    date_created: datetime
    date_last_updated: datetime
    date_approved: datetime | None = None
    refunds: list[Refund] = field(default_factory=list)

    @property
    def amount(self) -> Decimal:
        return self.preference.amount

    @property
    def amount_refunded(self) -> Decimal:
        return sum((refund.amount for refund in self.refunds), Decimal(0))

    def move(self, status: Status, detail: str | None, now: datetime) -> None:
        """Take `status`; the first move to approved stamps date_approved (money captured)."""
        self.status = status
        self.status_detail = detail or DEFAULT_DETAIL[status]
        self.date_last_updated = now
        if status is Status.APPROVED and self.date_approved is None:
            self.date_approved = now

    def check_refund(self, amount: Decimal | None) -> Decimal:
        """The amount a refund may take now (None: all that is left), or BadRequest."""
        if self.status not in REFUNDABLE:
            raise BadRequest(f"Invalid payment status {self.status.value} for a refund")
        remaining = self.amount - self.amount_refunded
        if amount is not None and amount > remaining:
            raise BadRequest(f"refund amount {amount} exceeds the refundable {remaining}")
        return remaining if amount is None else amount

    def add_refund(self, refund: Refund) -> None:
        """Record a checked refund; the one that returns everything makes the payment refunded."""
        self.refunds.append(refund)
        if self.amount_refunded == self.amount:
            self.move(Status.REFUNDED, None, refund.date_created)
        else:
            self.date_last_updated = refund.date_created
