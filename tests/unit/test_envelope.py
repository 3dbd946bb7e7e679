"""The message envelope: JSON round trip, and every undecodable body is InvalidEnvelope."""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payrelay.domain.errors import InvalidEnvelope
from payrelay.domain.events import (
    INEXACT_AMOUNT_SCHEMA_VERSION,
    SCHEMA_VERSION,
    Envelope,
    EventType,
    RejectionReason,
)
from payrelay.domain.money import AmountProblem, InexactAmount, Money, minor_unit_exponent

CURRENCIES = ["BRL", "USD", "ARS", "MXN", "CLP", "JPY"]
MESSAGE_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def envelope(**changes: Any) -> Envelope:
    fields: dict[str, Any] = {
        "type": EventType.PAYMENT_APPROVED,
        "occurred_at": datetime(2026, 1, 10, 12, 0, tzinfo=UTC),
        "order_id": "order-1",
        "payment_id": "pay-1",
        "provider": "mercadopago",
        "amount": Money.parse("10.00", "BRL"),
        "payment_version": 2,
        "correlation_id": "c",
        "message_id": MESSAGE_ID,
    }
    return Envelope(**(fields | changes))


def body(**changes: Any) -> bytes:
    """A valid envelope's JSON with some keys replaced; a value of `...` removes the key."""
    data = envelope().to_dict() | changes
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


# --- round trip -----------------------------------------------------------------------


@st.composite
def moneys(draw: st.DrawFn) -> Money:
    currency = draw(st.sampled_from(CURRENCIES))
    amount = draw(
        st.decimals(
            min_value=Decimal("-1e12"),
            max_value=Decimal("1e12"),
            places=minor_unit_exponent(currency),
            allow_nan=False,
            allow_infinity=False,
        )
    )
    return Money(amount, currency)


offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
texts = st.text(min_size=1, max_size=40)


@given(
    type_=st.sampled_from(list(EventType)),
    occurred_at=st.datetimes(timezones=offsets),
    ids=st.tuples(texts, texts, texts, texts),
    amount=moneys(),
    version=st.integers(min_value=1, max_value=2**53),
    reason=st.none() | st.sampled_from(list(RejectionReason)),
    causation_id=st.none() | st.uuids(),
)
def test_json_round_trip(
    type_: EventType,
    occurred_at: datetime,
    ids: tuple[str, str, str, str],
    amount: Money,
    version: int,
    reason: RejectionReason | None,
    causation_id: uuid.UUID | None,
) -> None:
    order_id, payment_id, provider, correlation_id = ids
    sent = Envelope(
        type=type_,
        occurred_at=occurred_at,
        order_id=order_id,
        payment_id=payment_id,
        provider=provider,
        amount=amount,
        payment_version=version,
        correlation_id=correlation_id,
        reason=reason,
        causation_id=causation_id,
    )
    received = Envelope.from_json(sent.to_json())
    assert received == sent
    # Equal is not enough for money: the written scale and the offset must survive too.
    assert str(received.amount.amount) == str(sent.amount.amount)
    assert received.occurred_at.utcoffset() == sent.occurred_at.utcoffset()


def test_json_is_the_documented_wire_format() -> None:
    data = json.loads(envelope().to_json())
    assert data == {
        "message_id": "12345678-1234-5678-1234-567812345678",
        "schema_version": SCHEMA_VERSION,
        "type": "payment.approved",
        "occurred_at": "2026-01-10T12:00:00+00:00",
        "order_id": "order-1",
        "payment_id": "pay-1",
        "provider": "mercadopago",
        "amount": "10.00",
        "currency": "BRL",
        "payment_version": 2,
        "correlation_id": "c",
        "reason": None,
        "causation_id": None,
        "approved_at": None,
        "order_version": None,
    }


def test_routing_key_is_the_event_type() -> None:
    assert envelope(type=EventType.PAYMENT_REFUNDED).routing_key == "payment.refunded"


# --- rejection ------------------------------------------------------------------------

REQUIRED = [
    "message_id",
    "schema_version",
    "type",
    "occurred_at",
    "order_id",
    "payment_id",
    "provider",
    "amount",
    "currency",
    "payment_version",
    "correlation_id",
]

UNDECODABLE: dict[str, bytes] = {
    "not-json": b"not json",
    "truncated-json": b'{"message_id": "x"',
    "not-utf8": b"\xff\xfe\x00",
    "empty": b"",
    "array": b"[]",
    "number": b"42",
    "string": b'"payment.approved"',
    "null": b"null",
    **{f"missing-{key}": body(**{key: ...}) for key in REQUIRED},
    "schema-version-2": body(schema_version=2),
    "schema-version-0": body(schema_version=0),
    "schema-version-text": body(schema_version="1"),
    "unknown-type": body(type="payment.teleported"),
    "type-null": body(type=None),
    "naive-occurred-at": body(occurred_at="2026-01-10T12:00:00"),
    "date-only-occurred-at": body(occurred_at="2026-01-10"),
    "garbage-occurred-at": body(occurred_at="yesterday"),
    "numeric-occurred-at": body(occurred_at=1767960000),
    "amount-word": body(amount="ten"),
    "amount-empty": body(amount=""),
    "amount-json-float": body(amount=10.5),
    "amount-json-int": body(amount=10),
    "amount-nan": body(amount="NaN"),
    "amount-infinity": body(amount="Infinity"),
    "amount-too-precise": body(amount="10.001"),
    "amount-tiny-exponent": body(amount="1e-3"),
    "amount-two-points": body(amount="10.5.0"),
    "amount-thousands-comma": body(amount="1,000.00"),
    "amount-decimals-for-clp": body(amount="10.5", currency="CLP"),
    "currency-lowercase": body(currency="brl"),
    "currency-four-letters": body(currency="BRLX"),
    "currency-null": body(currency=None),
    "version-word": body(payment_version="two"),
    "version-float-text": body(payment_version="2.5"),
    "version-json-float": body(payment_version=2.5),
    "version-null": body(payment_version=None),
    "version-list": body(payment_version=[2]),
    "message-id-garbage": body(message_id="not-a-uuid"),
    "message-id-number": body(message_id=12345),
    "causation-id-garbage": body(causation_id="not-a-uuid"),
    "causation-id-number": body(causation_id=12345),
    "unknown-reason": body(reason="felt_like_it"),
    "order-id-empty": body(order_id=""),
    "order-id-number": body(order_id=17),
    "payment-id-null": body(payment_id=None),
    "provider-object": body(provider={"name": "mercadopago"}),
}


@pytest.mark.parametrize("raw", list(UNDECODABLE.values()), ids=list(UNDECODABLE))
def test_undecodable_body_is_invalid_envelope(raw: bytes) -> None:
    with pytest.raises(InvalidEnvelope):
        Envelope.from_json(raw)


def test_the_untouched_body_used_above_decodes() -> None:
    """The rejection cases differ from this body only in the field they break."""
    assert Envelope.from_json(body()) == envelope()


@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_invalid_envelope_only(raw: bytes) -> None:
    with contextlib.suppress(InvalidEnvelope):
        Envelope.from_json(raw)


@given(
    key=st.sampled_from([*REQUIRED, "reason", "causation_id"]),
    value=st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
def test_any_json_value_in_any_field_decodes_or_raises_invalid_envelope(
    key: str, value: object
) -> None:
    with contextlib.suppress(InvalidEnvelope):
        Envelope.from_json(body(**{key: value}))


# --- version 2: an amount no Money holds exactly ---------------------------------------

INEXACT = InexactAmount("25.123", AmountProblem.PRECISION)


def inexact_envelope(**changes: Any) -> Envelope:
    return envelope(amount=Money.parse("25.12", "ARS"), inexact_amount=INEXACT, **changes)


def test_an_exact_amount_is_written_as_version_1_exactly_as_before() -> None:
    data = json.loads(envelope(amount=Money.parse("1500.0", "CLP")).to_json())
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert (data["amount"], data["currency"]) == ("1500.0", "CLP")
    assert "amount_written" not in data and "amount_problem" not in data


def test_an_inexact_amount_is_written_as_version_2_with_the_text_as_written() -> None:
    data = json.loads(inexact_envelope().to_json())
    assert data["schema_version"] == INEXACT_AMOUNT_SCHEMA_VERSION == 2
    assert (data["amount"], data["currency"]) == ("25.12", "ARS")
    assert (data["amount_written"], data["amount_problem"]) == ("25.123", "amount_precision")


@pytest.mark.parametrize(
    "sent",
    [inexact_envelope(), inexact_envelope(type=EventType.ORDER_PAYMENT_REJECTED,
                                          reason=RejectionReason.AMOUNT_PRECISION)],
    ids=["event", "outcome"],
)
def test_an_inexact_amount_survives_the_round_trip(sent: Envelope) -> None:
    received = Envelope.from_json(sent.to_json())
    assert received == sent
    assert received.inexact_amount == INEXACT


def test_a_version_1_message_written_before_version_2_existed_still_decodes() -> None:
    old = (
        b'{"message_id":"12345678-1234-5678-1234-567812345678","schema_version":1,'
        b'"type":"payment.approved","occurred_at":"2026-01-10T12:00:00+00:00",'
        b'"order_id":"order-1","payment_id":"pay-1","provider":"mercadopago",'
        b'"amount":"10.00","currency":"BRL","payment_version":2,"correlation_id":"c",'
        b'"reason":null,"causation_id":null}'
    )
    assert Envelope.from_json(old) == envelope()


def v2_body(**changes: Any) -> bytes:
    data = inexact_envelope().to_dict() | changes
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


UNDECODABLE_V2: dict[str, bytes] = {
    "missing-amount-written": v2_body(amount_written=...),
    "missing-amount-problem": v2_body(amount_problem=...),
    "unknown-problem": v2_body(amount_problem="amount_vibes"),
    "written-is-exact": v2_body(amount_written="25.12"),
    "written-disagrees-with-amount": v2_body(amount_written="30.001"),
    "written-not-a-number": v2_body(amount_written="about 25"),
    "written-json-float": v2_body(amount_written=25.123),
    "version-3": v2_body(schema_version=3),
    "version-true": v2_body(schema_version=True),
}


@pytest.mark.parametrize("raw", list(UNDECODABLE_V2.values()), ids=list(UNDECODABLE_V2))
def test_undecodable_version_2_body_is_invalid_envelope(raw: bytes) -> None:
    with pytest.raises(InvalidEnvelope):
        Envelope.from_json(raw)
