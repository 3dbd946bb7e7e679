"""NestJS mode's packets: payment events out as `{pattern, data}`, NestJS outcomes in as
payrelay envelopes, and every outcome that cannot be deduplicated refused."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from payrelay.adapters.transports.local import LocalTransport
from payrelay.adapters.transports.nestjs_packets import (
    NestJSPackets,
    decode_delivery,
    outcome_from_packet,
    to_packet,
)
from payrelay.domain.errors import InvalidEnvelope
from payrelay.domain.events import Envelope, EventType, RejectionReason
from payrelay.domain.money import Money
from payrelay.messaging import (
    ORDER_SIDE_SUBSCRIPTION,
    ORDERS_EXCHANGE,
    PAYMENTS_EXCHANGE,
    PAYMENTS_SIDE_SUBSCRIPTION,
)
from payrelay.ports import Delivery, OutboundMessage

EVENT_ID = uuid.UUID("11111111-2222-3333-4444-555555555555")
ANSWER_ID = "66666666-7777-8888-9999-000000000000"


def payment_event() -> Envelope:
    return Envelope(
        type=EventType.PAYMENT_APPROVED, occurred_at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        order_id="order-1", payment_id="1000", provider="mercadopago",
        amount=Money.parse("12.30", "BRL"), payment_version=2,
        correlation_id="mercadopago:1000", message_id=EVENT_ID,
    )


def outbound(envelope: Envelope, exchange: str = PAYMENTS_EXCHANGE) -> OutboundMessage:
    return OutboundMessage(envelope.message_id, exchange, envelope.routing_key,
                           envelope.correlation_id, envelope.to_json())


def nestjs_answer(**changes: Any) -> dict[str, Any]:
    """What the reference service emits: the event's data with the answer's fields."""
    data = {**payment_event().to_dict(), "type": "order.payment_rejected",
            "message_id": ANSWER_ID, "reason": "already_paid",
            "causation_id": str(EVENT_ID), "order_version": 3}
    data.update(changes)
    return {"pattern": data["type"], "data": data}


def packet_bytes(packet: dict[str, Any]) -> bytes:
    return json.dumps(packet).encode()


def test_a_payment_event_goes_out_as_a_nestjs_event_packet_keeping_its_properties():
    message = outbound(payment_event())
    packet = to_packet(message)
    body = json.loads(packet.body)
    assert set(body) == {"pattern", "data"}  # no `id`: NestJS dispatches it as an event
    assert body["pattern"] == "payment.approved"
    assert Envelope.from_dict(body["data"]) == payment_event()
    assert (packet.message_id, packet.correlation_id, packet.routing_key) == (
        message.message_id, message.correlation_id, message.routing_key)


def test_a_nestjs_outcome_decodes_into_payrelays_envelope():
    envelope = outcome_from_packet(packet_bytes(nestjs_answer()))
    assert envelope.type is EventType.ORDER_PAYMENT_REJECTED
    assert envelope.reason is RejectionReason.ALREADY_PAID
    assert str(envelope.message_id) == ANSWER_ID
    assert envelope.causation_id == EVENT_ID and envelope.order_version == 3


def test_schema_version_and_type_default_from_the_packet():
    packet = nestjs_answer()
    del packet["data"]["schema_version"], packet["data"]["type"]
    envelope = outcome_from_packet(packet_bytes(packet))
    assert envelope.type is EventType.ORDER_PAYMENT_REJECTED and envelope.schema_version == 1


def test_the_message_id_may_come_as_the_amqp_property_alone():
    packet = nestjs_answer()
    del packet["data"]["message_id"]
    assert str(outcome_from_packet(packet_bytes(packet), message_id=ANSWER_ID).message_id) \
        == ANSWER_ID


@pytest.mark.parametrize(("packet", "property_id", "why"), [
    ({**nestjs_answer(), "data": {**nestjs_answer()["data"], "message_id": None}}, "",
     "no message id"),
    (nestjs_answer(), str(uuid.uuid4()), "differ"),
    (nestjs_answer(message_id="not-a-uuid"), "", "not a UUID"),
    ({**nestjs_answer(), "pattern": "payment.approved"}, "", "not an outcome"),
    ({**nestjs_answer(), "pattern": "order.payment_applied"}, "", "differs from pattern"),
    ({"pattern": "order.payment_applied"}, "", "not a NestJS packet"),
    (nestjs_answer(schema_version=7), "", "schema_version"),
])
def test_an_outcome_that_cannot_be_deduplicated_or_read_is_refused(
    packet: dict[str, Any], property_id: str, why: str
):
    with pytest.raises(InvalidEnvelope, match=why):
        outcome_from_packet(packet_bytes(packet), message_id=property_id)


def test_an_undecodable_packet_is_handed_on_unchanged_for_the_dead_letters():
    bad = Delivery("m", "payments.order-events", packet_bytes(nestjs_answer(message_id=None)))
    assert decode_delivery(bad) is bad
    envelope = Delivery("m", "order.payment_applied", payment_event().to_json())
    assert decode_delivery(envelope) is envelope  # payrelay's own envelopes pass as they are


def test_a_decoded_delivery_routes_as_an_outcome_sent_through_payrelays_exchange():
    sent_to_queue = Delivery("", "payments.order-events", packet_bytes(nestjs_answer()))
    decoded = decode_delivery(sent_to_queue)
    assert (decoded.message_id, decoded.routing_key) == (ANSWER_ID, "order.payment_rejected")
    assert decoded.headers["x-payrelay-exchange"] == ORDERS_EXCHANGE
    assert Envelope.from_json(decoded.body).reason is RejectionReason.ALREADY_PAID


async def test_the_wrapped_transport_hands_the_outcome_consumer_envelopes():
    transport = NestJSPackets(LocalTransport())
    received: list[Delivery] = []

    async def handler(batch: Sequence[Delivery]) -> None:
        received.extend(batch)

    await transport.subscribe(PAYMENTS_SIDE_SUBSCRIPTION, handler)
    answer = OutboundMessage(uuid.UUID(ANSWER_ID), ORDERS_EXCHANGE, "order.payment_rejected",
                             "mercadopago:1000", packet_bytes(nestjs_answer()))
    result = await transport.publish([answer])
    assert result.confirmed == {answer.message_id}
    assert [Envelope.from_json(d.body).message_id for d in received] == [answer.message_id]
    await transport.close()


async def test_the_order_sides_own_queue_is_refused_in_nestjs_mode():
    async def handler(batch: Sequence[Delivery]) -> None:
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="NestJS service is the order side"):
        await NestJSPackets(LocalTransport()).subscribe(ORDER_SIDE_SUBSCRIPTION, handler)


async def test_nestjs_mode_needs_rabbitmq():
    from payrelay.bootstrap import build_transport
    from payrelay.config import OrderSide, Settings

    with pytest.raises(ValueError, match="outside NestJS mode"):
        await build_transport(Settings(order_side=OrderSide.NESTJS))
