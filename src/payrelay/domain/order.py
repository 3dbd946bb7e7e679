"""The order state machine and how a payment event moves it.

The order side may see a payment's events twice, late, or out of order. Each envelope
carries the payment's whole current status and version, so the order side keeps, per
payment, the highest version it applied and the outcome it decided, and reasons from the
latest status: a `refunded` seen before `approved` still means "was approved, then
refunded". Applying any arrival order of the same events therefore ends in the state that
applying them in version order would reach.

A payment whose amount the gateway wrote finer than its currency allows (25.123 ARS) pays
nothing and is refunded by nobody: no exact amount exists to compare or to give back. It
is rejected with `amount_precision`, and an order that was waiting for it is held in
`needs_review` with that reason, for a person to decide.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from payrelay.domain.errors import IllegalTransition
from payrelay.domain.events import Envelope, EventType, RejectionReason
from payrelay.domain.money import AmountProblem, InexactAmount, Money
from payrelay.domain.payment import PaymentStatus


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    """Created; waiting for an approved payment."""
    PAID = "paid"
    """One approved payment covers the total."""
    CANCELLED = "cancelled"
    """Cancelled by the customer or the shop before payment."""
    EXPIRED = "expired"
    """Nobody paid in time."""
    REFUNDED = "refunded"
    """The payment that paid it was refunded or charged back."""
    NEEDS_REVIEW = "needs_review"
    """A person must decide (e.g. a payment whose amount does not match, held for review)."""


_O = OrderStatus
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    _O.PENDING_PAYMENT: frozenset({_O.PAID, _O.CANCELLED, _O.EXPIRED, _O.NEEDS_REVIEW}),
    _O.PAID: frozenset({_O.REFUNDED, _O.NEEDS_REVIEW}),
    _O.NEEDS_REVIEW: frozenset({_O.PAID, _O.CANCELLED, _O.REFUNDED}),
    _O.CANCELLED: frozenset(),
    _O.EXPIRED: frozenset(),
    _O.REFUNDED: frozenset(),
}

# Statuses a payment can only hold after it was approved (money was captured).
WAS_APPROVED: frozenset[PaymentStatus] = frozenset(
    {
        PaymentStatus.APPROVED,
        PaymentStatus.IN_MEDIATION,
        PaymentStatus.REFUNDED,
        PaymentStatus.CHARGED_BACK,
    }
)
REVERSED: frozenset[PaymentStatus] = frozenset(
    {PaymentStatus.REFUNDED, PaymentStatus.CHARGED_BACK}
)

_REJECTION_FOR_STATUS: dict[OrderStatus, RejectionReason] = {
    _O.PAID: RejectionReason.ALREADY_PAID,
    _O.REFUNDED: RejectionReason.ALREADY_PAID,
    _O.NEEDS_REVIEW: RejectionReason.ALREADY_PAID,
    _O.CANCELLED: RejectionReason.ORDER_CANCELLED,
    _O.EXPIRED: RejectionReason.ORDER_EXPIRED,
}

_REJECTION_FOR_PROBLEM: dict[AmountProblem, RejectionReason] = {
    AmountProblem.PRECISION: RejectionReason.AMOUNT_PRECISION,
}


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    status: OrderStatus
    total: Money
    paid_by: str | None = None
    version: int = 1
    review_reason: RejectionReason | None = None  # why it is in needs_review

    def move_to(self, target: OrderStatus) -> Order:
        """The order in `target`, one version later; a review's reason goes with the review."""
        if target not in TRANSITIONS[self.status]:
            raise IllegalTransition("order", self.status, target)
        return replace(self, status=target, version=self.version + 1, review_reason=None)

    def hold_for_review(self, reason: RejectionReason) -> Order:
        return replace(self.move_to(_O.NEEDS_REVIEW), review_reason=reason)

    def cancel(self) -> Order:
        return self.move_to(_O.CANCELLED)

    def expire(self) -> Order:
        return self.move_to(_O.EXPIRED)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the order side decided about one payment; decided once, then repeated."""

    type: EventType
    reason: RejectionReason | None = None

    @classmethod
    def applied(cls) -> Outcome:
        return cls(EventType.ORDER_PAYMENT_APPLIED)

    @classmethod
    def rejected(cls, reason: RejectionReason) -> Outcome:
        return cls(EventType.ORDER_PAYMENT_REJECTED, reason)


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """What the order side knows of one payment."""

    payment_id: str
    order_id: str
    last_version: int
    last_status: PaymentStatus
    outcome: Outcome | None = None
    approved_at: datetime | None = None

    def precedes(self, other: PaymentRecord) -> bool:
        """The keeper rule: the earliest approval, then the lowest id, is kept."""
        return _keeper_key(self) < _keeper_key(other)


def _keeper_key(record: PaymentRecord) -> tuple[datetime, int, str]:
    when = record.approved_at or datetime.max.replace(tzinfo=UTC)
    number = int(record.payment_id) if record.payment_id.isdigit() else 0
    return (when, number, record.payment_id)


@dataclass(frozen=True, slots=True)
class PaymentEventEffect:
    order: Order | None  # the order after the event (unchanged object if nothing moved)
    record: PaymentRecord  # what to store for the payment
    decided: Outcome | None  # set when this event decided the payment's outcome
    stale: bool = False
    displaced: PaymentRecord | None = None  # the former keeper, now rejected as already_paid


def apply_payment_event(
    order: Order | None,
    record: PaymentRecord | None,
    event: Envelope,
    keeper: PaymentRecord | None = None,
) -> PaymentEventEffect:
    """Apply one payment event to its order; pure, so it can be replayed and tested.

    `keeper` is the record of the payment that currently pays the order, if any. When a
    second approval arrives, the keeper rule decides which one stays, whatever the order
    they arrived in: the earliest approval, then the lowest id. A keeper that loses is
    displaced: its outcome becomes `already_paid`, and the payments side refunds it.
    """
    status = event.type.payment_status
    if record is not None and event.payment_version <= record.last_version:
        return PaymentEventEffect(order, record, decided=None, stale=True)
    record = PaymentRecord(
        payment_id=event.payment_id,
        order_id=event.order_id,
        last_version=event.payment_version,
        last_status=status,
        outcome=record.outcome if record else None,
        approved_at=(record.approved_at if record else None) or event.approved_at,
    )
    decided: Outcome | None = None
    if status in WAS_APPROVED and record.outcome is None:
        if _displaces(order, keeper, record, event):
            assert order is not None and keeper is not None
            decided = Outcome.applied()
            order = replace(order, paid_by=record.payment_id, version=order.version + 1)
            displaced = replace(keeper, outcome=Outcome.rejected(RejectionReason.ALREADY_PAID))
            record = replace(record, outcome=decided)
            return PaymentEventEffect(order, record, decided, displaced=displaced)
        order, decided = _decide(order, event)
        record = replace(record, outcome=decided)
    if status in REVERSED and order is not None and _paid_by(order, event.payment_id):
        order = order.move_to(_O.REFUNDED)
    return PaymentEventEffect(order, record, decided)


def _displaces(
    order: Order | None, keeper: PaymentRecord | None, record: PaymentRecord, event: Envelope
) -> bool:
    """Whether this newly approved payment takes the place of the one paying the order."""
    return (
        order is not None
        and order.status is _O.PAID
        and keeper is not None
        and keeper.payment_id == order.paid_by != record.payment_id
        and keeper.last_status is PaymentStatus.APPROVED  # a disputed keeper stays put
        and event.inexact_amount is None  # its `amount` is only an approximation
        and order.total.same_value(event.amount)
        and record.precedes(keeper)
    )


def _paid_by(order: Order, payment_id: str) -> bool:
    return order.status is _O.PAID and order.paid_by == payment_id


def _decide(order: Order | None, event: Envelope) -> tuple[Order | None, Outcome]:
    if event.inexact_amount is not None:
        return _hold(order, event.inexact_amount)
    if order is None:
        return None, Outcome.rejected(RejectionReason.UNKNOWN_ORDER)
    if order.status is not _O.PENDING_PAYMENT:
        return order, Outcome.rejected(_REJECTION_FOR_STATUS[order.status])
    if not order.total.same_value(event.amount):
        return order, Outcome.rejected(RejectionReason.AMOUNT_MISMATCH)
    paid = replace(order.move_to(_O.PAID), paid_by=event.payment_id)
    return paid, Outcome.applied()


def _hold(order: Order | None, inexact: InexactAmount) -> tuple[Order | None, Outcome]:
    """An inexact amount is a person's call: the order waiting for it waits for them too.

    An order that is no longer waiting (paid by another payment, cancelled, expired) stays
    as it is; the rejection alone holds the payment's money on the payments side.
    """
    reason = _REJECTION_FOR_PROBLEM[inexact.problem]
    if order is not None and order.status is _O.PENDING_PAYMENT:
        order = order.hold_for_review(reason)
    return order, Outcome.rejected(reason)


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku: str
    quantity: int
    unit_price: Money
