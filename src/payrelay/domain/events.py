"""Events and the versioned message envelope both services exchange.

An envelope is what crosses the broker: small, self-describing, and decodable by a consumer
that knows nothing else. `payment_version` lets the order side put events for one payment
back in order; `message_id` lets every consumer drop a redelivery through its inbox.

Schema versions. Version 1 is the base format. Version 2 is version 1 plus `amount_written`
and `amount_problem`, both required: the payment's amount as the gateway wrote it, when no
Money holds it exactly (`amount` is then that value rounded toward zero). An envelope is
written with the lowest version that carries all it says, so readers that only know
version 1 keep reading every other message; one that carries an inexact amount says
version 2, which such a reader refuses (a dead letter to replay once it is upgraded)
instead of taking the rounded amount for exact. Readers decode both versions.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from payrelay.domain.errors import InvalidEnvelope, InvalidMoney
from payrelay.domain.money import AmountProblem, InexactAmount, Money, read_amount
from payrelay.domain.payment import PaymentStatus

SCHEMA_VERSION = 1
"""The base format, written unless the envelope needs a later version's fields."""
INEXACT_AMOUNT_SCHEMA_VERSION = 2
"""Adds `amount_written` and `amount_problem`, both required."""


class EventType(StrEnum):
    PAYMENT_PENDING = "payment.pending"
    PAYMENT_IN_PROCESS = "payment.in_process"
    PAYMENT_AUTHORIZED = "payment.authorized"
    PAYMENT_APPROVED = "payment.approved"
    PAYMENT_REJECTED = "payment.rejected"
    PAYMENT_CANCELLED = "payment.cancelled"
    PAYMENT_REFUNDED = "payment.refunded"
    PAYMENT_CHARGED_BACK = "payment.charged_back"
    PAYMENT_IN_MEDIATION = "payment.in_mediation"
    ORDER_PAYMENT_APPLIED = "order.payment_applied"
    """The order side accepted the payment (or had already, for this very payment)."""
    ORDER_PAYMENT_REJECTED = "order.payment_rejected"
    """The order side refused the payment; `reason` says why."""

    @classmethod
    def for_payment_status(cls, status: PaymentStatus) -> EventType:
        return cls(f"payment.{status.value}")

    @property
    def is_payment_event(self) -> bool:
        return self.value.startswith("payment.")

    @property
    def payment_status(self) -> PaymentStatus:
        return PaymentStatus(self.value.removeprefix("payment."))


class RejectionReason(StrEnum):
    ALREADY_PAID = "already_paid"
    ORDER_CANCELLED = "order_cancelled"
    ORDER_EXPIRED = "order_expired"
    AMOUNT_MISMATCH = "amount_mismatch"
    UNKNOWN_ORDER = "unknown_order"
    AMOUNT_PRECISION = "amount_precision"
    """The gateway's amount is finer than its currency: no exact amount to pay or refund."""


@dataclass(frozen=True, slots=True)
class Envelope:
    type: EventType
    occurred_at: datetime
    order_id: str
    payment_id: str
    provider: str
    amount: Money
    payment_version: int
    correlation_id: str
    reason: RejectionReason | None = None
    causation_id: uuid.UUID | None = None  # the message this one answers
    approved_at: datetime | None = None  # the gateway's approval time, for the keeper rule
    order_version: int | None = None  # on outcomes: later decisions about a payment win
    inexact_amount: InexactAmount | None = None  # set: `amount` is only an approximation
    message_id: uuid.UUID = field(default_factory=uuid.uuid4)

    @property
    def routing_key(self) -> str:
        return self.type.value

    @property
    def schema_version(self) -> int:
        if self.inexact_amount is not None:
            return INEXACT_AMOUNT_SCHEMA_VERSION
        return SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "message_id": str(self.message_id),
            "schema_version": self.schema_version,
            "type": self.type.value,
            "occurred_at": self.occurred_at.isoformat(),
            "order_id": self.order_id,
            "payment_id": self.payment_id,
            "provider": self.provider,
            "amount": str(self.amount.amount),
            "currency": self.amount.currency,
            "payment_version": self.payment_version,
            "correlation_id": self.correlation_id,
            "reason": self.reason.value if self.reason else None,
            "causation_id": str(self.causation_id) if self.causation_id else None,
            "approved_at": self.approved_at.isoformat() if self.approved_at else None,
            "order_version": self.order_version,
        }
        if self.inexact_amount is not None:
            data["amount_written"] = self.inexact_amount.written
            data["amount_problem"] = self.inexact_amount.problem.value
        return data

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Envelope:
        """Decode, or raise InvalidEnvelope: a permanent failure, never worth a retry."""
        try:
            version = data["schema_version"]
            if type(version) is not int or version not in (
                SCHEMA_VERSION, INEXACT_AMOUNT_SCHEMA_VERSION
            ):
                raise InvalidEnvelope(f"unsupported schema_version {version!r}")
            amount, inexact = _amount(data, inexact=version == INEXACT_AMOUNT_SCHEMA_VERSION)
            reason, causation = data.get("reason"), data.get("causation_id")
            occurred_at = datetime.fromisoformat(data["occurred_at"])
            if occurred_at.tzinfo is None:
                raise InvalidEnvelope("occurred_at has no timezone")
            return cls(
                message_id=uuid.UUID(_text(data, "message_id")),
                type=EventType(data["type"]),
                occurred_at=occurred_at,
                order_id=_text(data, "order_id"),
                payment_id=_text(data, "payment_id"),
                provider=_text(data, "provider"),
                amount=amount,
                payment_version=_positive_int(data, "payment_version"),
                correlation_id=_text(data, "correlation_id"),
                reason=RejectionReason(reason) if reason else None,
                causation_id=uuid.UUID(_text(data, "causation_id")) if causation else None,
                approved_at=_optional_time(data.get("approved_at")),
                order_version=(
                    _positive_int(data, "order_version")
                    if data.get("order_version") is not None else None
                ),
                inexact_amount=inexact,
            )
        except InvalidEnvelope:
            raise
        except (
            KeyError, TypeError, ValueError, AttributeError, InvalidOperation, InvalidMoney
        ) as exc:
            raise InvalidEnvelope(f"undecodable envelope: {exc!r}") from exc

    @classmethod
    def from_json(cls, body: bytes) -> Envelope:
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidEnvelope(f"body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidEnvelope("envelope must be a JSON object")
        return cls.from_dict(data)


def _amount(data: dict[str, Any], *, inexact: bool) -> tuple[Money, InexactAmount | None]:
    """The amount; in version 2 also the text as written, which must agree with it."""
    amount = Money.parse(Decimal(_text(data, "amount")), _text(data, "currency"))
    if not inexact:
        return amount, None
    rounded, found = read_amount(Decimal(_text(data, "amount_written")), amount.currency)
    problem = AmountProblem(data["amount_problem"])
    if found is None or found.problem is not problem or not rounded.same_value(amount):
        raise InvalidEnvelope("amount_written does not match amount and amount_problem")
    return amount, found


def _optional_time(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEnvelope("approved_at must be an ISO 8601 string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise InvalidEnvelope("approved_at has no timezone")
    return parsed


def _positive_int(data: dict[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidEnvelope(f"{key} must be a positive integer")
    return value


def _text(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise InvalidEnvelope(f"{key} must be a non-empty string")
    return value
