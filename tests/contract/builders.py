"""Small builders of the domain values storage and service tests hand to the ports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from payrelay.domain.events import Envelope, EventType, RejectionReason
from payrelay.domain.money import Money
from payrelay.domain.payment import Payment, PaymentSnapshot, PaymentStatus
from payrelay.ports import NotificationRecord, RefundRequest

AT = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
TEN = Money.parse("10.00", "BRL")
PROVIDER = "mercadopago"


def notification(
    resource_id: str = "1000000001", *, key: str | None = None, at: datetime = AT,
    due_at: datetime | None = None, ignored: bool = False,
) -> NotificationRecord:
    return NotificationRecord(
        dedupe_key=key or f"{PROVIDER}:payment:{resource_id}:{uuid.uuid4().hex[:8]}",
        provider=PROVIDER, topic="payment", action="payment.updated",
        resource_id=resource_id, request_id=None, received_at=at, ignored=ignored,
        due_at=due_at,
    )


def snapshot(
    payment_id: str = "1000000001", status: PaymentStatus = PaymentStatus.APPROVED, *,
    order_id: str | None = "order-1", updated: datetime = AT, amount: Money = TEN,
) -> PaymentSnapshot:
    approved = status is PaymentStatus.APPROVED
    return PaymentSnapshot(
        payment_id=payment_id, provider=PROVIDER, order_id=order_id, status=status,
        status_detail="accredited" if approved else None, amount=amount,
        amount_refunded=Money.parse("0", amount.currency), date_created=AT,
        date_approved=AT if approved else None, date_last_updated=updated,
    )


def payment(
    payment_id: str = "1000000001", status: PaymentStatus = PaymentStatus.APPROVED, *,
    version: int = 1, order_id: str | None = "order-1", updated: datetime = AT,
) -> Payment:
    return Payment(snapshot(payment_id, status, order_id=order_id, updated=updated), version)


def envelope(
    payment_id: str = "1000000001", *, order_id: str = "order-1",
    type: EventType = EventType.PAYMENT_APPROVED, version: int = 1,
    reason: RejectionReason | None = None, order_version: int | None = None,
    amount: Money = TEN, at: datetime = AT,
) -> Envelope:
    return Envelope(
        type=type, occurred_at=at, order_id=order_id, payment_id=payment_id,
        provider=PROVIDER, amount=amount, payment_version=version,
        correlation_id=f"{PROVIDER}:{payment_id}", reason=reason,
        order_version=order_version, approved_at=at if type.is_payment_event else None,
        message_id=uuid.uuid4(),
    )


def refund_request(payment_id: str = "1000000001", *, order_id: str = "order-1"
                   ) -> RefundRequest:
    return RefundRequest(payment_id=payment_id, provider=PROVIDER, order_id=order_id,
                         amount=TEN, reason=RejectionReason.ALREADY_PAID.value)
