"""Envelopes the services really write validate against the published JSON Schemas
(docs/contract/schemas/), and the schemas refuse what payrelay's decoder refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from payrelay.domain.events import Envelope, EventType, RejectionReason
from payrelay.domain.money import AmountProblem, InexactAmount, Money
from payrelay.ports import Delivery
from tests.contract.builders import envelope
from tests.services.conftest import World

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "contract" / "schemas"


def validator(kind: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def errors(kind: str, body: bytes | dict[str, Any]) -> list[str]:
    document = json.loads(body) if isinstance(body, bytes) else body
    return [e.message for e in validator(kind).iter_errors(document)]


def delivery(body: bytes) -> Delivery:
    message = Envelope.from_json(body)
    return Delivery(message_id=str(message.message_id), routing_key=message.routing_key,
                    body=body)


async def test_the_envelopes_the_services_write_are_valid(world: World) -> None:
    await world.add_order()
    for _ in range(2):  # the second approval of the order is rejected: already_paid
        await world.notify(await world.pay())
    await world.processor().run_once()
    events = [row.body for row in world.p.outbox.values()]
    assert len(events) == 2
    for body in events:
        assert errors("payment-event", body) == []
        await world.order_consumer.handle([delivery(body)])
    outcomes = [Envelope.from_json(row.body) for row in world.o.outbox.values()]
    assert sorted(o.type for o in outcomes) == [
        EventType.ORDER_PAYMENT_APPLIED, EventType.ORDER_PAYMENT_REJECTED]
    for row in world.o.outbox.values():
        assert errors("order-outcome", row.body) == []
        assert errors("payment-event", row.body) != []  # an outcome is no payment event


def inexact(kind: EventType, reason: RejectionReason | None = None) -> Envelope:
    return Envelope(
        type=kind, occurred_at=envelope().occurred_at, order_id="o-1", payment_id="1",
        provider="mercadopago", amount=Money.parse("25.12", "ARS"), payment_version=1,
        correlation_id="mercadopago:1", reason=reason,
        causation_id=None if kind.is_payment_event else envelope().message_id,
        inexact_amount=InexactAmount("25.123", AmountProblem.PRECISION),
    )


def test_version_2_envelopes_are_valid_and_need_their_fields() -> None:
    event = inexact(EventType.PAYMENT_APPROVED).to_dict()
    assert event["schema_version"] == 2 and errors("payment-event", event) == []
    rejection = inexact(EventType.ORDER_PAYMENT_REJECTED, RejectionReason.AMOUNT_PRECISION)
    assert errors("order-outcome", rejection.to_dict()) == []
    assert errors("payment-event", {k: v for k, v in event.items()
                                    if k != "amount_written"}) != []
    as_version_1 = event | {"schema_version": 1}
    assert errors("payment-event", as_version_1) != []


@pytest.mark.parametrize(("change", "why"), [
    ({"amount": 10.0}, "a float amount"),
    ({"amount": "1e3"}, "an exponent"),
    ({"currency": "QQQ"}, "no ISO 4217 currency"),
    ({"schema_version": 3}, "an unknown version"),
    ({"payment_version": 0}, "a version below 1"),
    ({"message_id": "not-a-uuid"}, "a message id that is no UUID"),
    ({"type": "order.payment_applied"}, "an outcome type"),
    ({"reason": "already_paid"}, "a reason on a payment event"),
    ({"surprise": 1}, "a field no version has"),
])
def test_the_payment_event_schema_refuses(change: dict[str, Any], why: str) -> None:
    assert errors("payment-event", envelope().to_dict() | change) != [], why


def test_a_rejection_needs_its_reason_and_an_application_has_none() -> None:
    answer = envelope(type=EventType.ORDER_PAYMENT_REJECTED, reason=RejectionReason.UNKNOWN_ORDER)
    answer = Envelope.from_dict(answer.to_dict() | {"causation_id": str(answer.message_id)})
    good = answer.to_dict()
    assert errors("order-outcome", good) == []
    assert errors("order-outcome", good | {"reason": None}) != []
    applied = good | {"type": "order.payment_applied"}
    assert errors("order-outcome", applied) != []
    assert errors("order-outcome", applied | {"reason": None}) == []
    for reason in RejectionReason:
        assert errors("order-outcome", good | {"reason": reason.value}) == []
