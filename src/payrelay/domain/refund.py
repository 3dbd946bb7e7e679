"""When a rejected payment is refunded, and the key that makes a refund happen only once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from payrelay.domain.events import RejectionReason
from payrelay.domain.money import Money


class MismatchPolicy(StrEnum):
    REFUND = "refund"
    """A payment whose amount differs from the order's is returned at once."""
    HOLD = "hold"
    """It is kept and listed for a person to decide."""


class RefundAction(StrEnum):
    REFUND = "refund"
    HOLD = "hold"


# The order cannot use this money: the customer must get it back.
ALWAYS_REFUNDED: frozenset[RejectionReason] = frozenset(
    {
        RejectionReason.ALREADY_PAID,
        RejectionReason.ORDER_CANCELLED,
        RejectionReason.ORDER_EXPIRED,
    }
)


def action_for(reason: RejectionReason, mismatch: MismatchPolicy) -> RefundAction:
    """What to do with an approved payment the order side rejected for `reason`.

    An unknown order is held, not refunded: it more likely means the order side lost a row
    than that the customer paid for nothing, and a person should look before money moves.
    An amount finer than its currency (`amount_precision`) is held whatever the mismatch
    policy: the stored amount is rounded, so no refund of it would be exact.
    """
    if reason in ALWAYS_REFUNDED:
        return RefundAction.REFUND
    if reason is RejectionReason.AMOUNT_MISMATCH and mismatch is MismatchPolicy.REFUND:
        return RefundAction.REFUND
    return RefundAction.HOLD


def idempotency_key(provider: str, payment_id: str) -> str:
    """Stable per payment: every attempt to refund it, from any process, sends the same key."""
    return f"payrelay-refund-{provider}-{payment_id}"


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """A refund payrelay owes: recorded before the gateway is called, one per payment."""

    payment_id: str
    provider: str
    order_id: str
    amount: Money
    reason: str
    attempts: int = 0
    failures: int = 0
    created_at: datetime | None = None
