"""One envelope of each shape payrelay writes, built with the real `Envelope` class.

The schemas take their fields from what these envelopes' `to_dict` writes, and the AsyncAPI
document shows them as examples, so both follow the code: a field the envelope starts to
write appears here first. Ids and times are fixed, so the documents are the same every run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from payrelay.domain.events import Envelope, EventType, RejectionReason
from payrelay.domain.money import AmountProblem, InexactAmount, Money

__all__ = ["EnvelopeClass", "Samples", "samples"]

EnvelopeClass = type[Envelope]
"""`Envelope`, or a subclass (a test adds a field to see the drift check fail)."""

_AT = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
_APPROVAL_ID = uuid.UUID("0b7d1a52-6c1e-4f3a-9a55-1d1e7f0c2a01")


@dataclass(frozen=True)
class Samples:
    """The envelopes of one kind: each one as `to_dict` writes it."""

    version_1: list[dict[str, Any]]
    version_2: list[dict[str, Any]]

    @property
    def all(self) -> list[dict[str, Any]]:
        return [*self.version_1, *self.version_2]


def samples(cls: EnvelopeClass = Envelope) -> dict[str, Samples]:
    """Payment events and order outcomes, in schema version 1 and 2, keyed by kind."""
    approval = cls(
        type=EventType.PAYMENT_APPROVED, occurred_at=_AT, order_id="order-1001",
        payment_id="1000000001", provider="mercadopago",
        amount=Money.parse("25.00", "BRL"), payment_version=2,
        correlation_id="mercadopago:1000000001", approved_at=_AT, message_id=_APPROVAL_ID,
    )
    inexact = cls(
        type=EventType.PAYMENT_APPROVED, occurred_at=_AT, order_id="order-1002",
        payment_id="1000000002", provider="mercadopago",
        amount=Money.parse("25.12", "ARS"), payment_version=1,
        correlation_id="mercadopago:1000000002", approved_at=_AT,
        inexact_amount=InexactAmount("25.123", AmountProblem.PRECISION),
        message_id=uuid.UUID("5f0e8c43-2b7a-4d19-8e61-3c2d4b5a6f02"),
    )
    applied = _answer(cls, approval, EventType.ORDER_PAYMENT_APPLIED, None, 2,
                      "9d3c2b1a-0f4e-4a8b-b7c6-d5e4f3a2b103")
    rejected = _answer(cls, approval, EventType.ORDER_PAYMENT_REJECTED,
                       RejectionReason.ALREADY_PAID, 3, "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c04")
    rejected_inexact = _answer(cls, inexact, EventType.ORDER_PAYMENT_REJECTED,
                               RejectionReason.AMOUNT_PRECISION, 2,
                               "1c2d3e4f-5a6b-4c7d-9e8f-a0b1c2d3e405")
    return {
        "payment-event": Samples([approval.to_dict()], [inexact.to_dict()]),
        "order-outcome": Samples([applied.to_dict(), rejected.to_dict()],
                                 [rejected_inexact.to_dict()]),
    }


def _answer(
    cls: EnvelopeClass, event: Envelope, kind: EventType, reason: RejectionReason | None,
    order_version: int, message_id: str,
) -> Envelope:
    """The order side's answer to `event`, as its consumer builds one."""
    return cls(
        type=kind, occurred_at=_AT, order_id=event.order_id, payment_id=event.payment_id,
        provider=event.provider, amount=event.amount, payment_version=event.payment_version,
        correlation_id=event.correlation_id, reason=reason, causation_id=event.message_id,
        approved_at=event.approved_at, order_version=order_version,
        inexact_amount=event.inexact_amount, message_id=uuid.UUID(message_id),
    )
