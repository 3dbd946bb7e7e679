"""NestJS mode: payrelay's envelopes as NestJS `Transport.RMQ` packets, both ways.

NestJS's RMQ server reads every message body as a packet `{"pattern": …, "data": …}` and
dispatches it by `pattern` (a packet without `id` is an event, for `@EventPattern`); its
`ClientProxy.emit(pattern, data)` writes the same shape, and sets no message id unless
the caller passes one in an `RmqRecord`. payrelay's own consumers expect a bare envelope,
so this module translates at the transport's edge and the services never know:

- out: a payment event becomes `{"pattern": "payment.approved", "data": <envelope>}`;
  the relay publishes it as ever (persistent, publisher confirms, message id and
  correlation id as AMQP properties), so the NestJS service can ack after its commit.
- in: an outcome packet `{"pattern": "order.payment_applied", "data": {...}}` becomes
  payrelay's outcome envelope. Its message id (the payments-side inbox key) is
  `data.message_id`, or else the AMQP `message_id` property; when both are given they
  must agree. A packet that cannot be decoded is handed on unchanged, so the outcome
  consumer keeps it as a dead letter with its reason instead of dropping it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from payrelay.adapters.transports.nestjs_queue import ForeignQueue
from payrelay.adapters.transports.rabbitmq import RabbitMQTransport
from payrelay.domain.errors import InvalidEnvelope
from payrelay.domain.events import SCHEMA_VERSION, Envelope, EventType
from payrelay.messaging import (
    ORDER_SIDE_SUBSCRIPTION,
    ORDERS_EXCHANGE,
    PAYMENTS_EXCHANGE,
    PAYMENTS_SIDE_SUBSCRIPTION,
)
from payrelay.ports import (
    BatchHandler,
    Delivery,
    OutboundMessage,
    PublishResult,
    Subscription,
    Transport,
)

__all__ = ["NestJSPackets", "connect_rabbitmq", "outcome_from_packet", "to_packet"]

OUTCOME_TYPES = frozenset({EventType.ORDER_PAYMENT_APPLIED, EventType.ORDER_PAYMENT_REJECTED})
_EXCHANGE_HEADER = "x-payrelay-exchange"


def to_packet(message: OutboundMessage) -> OutboundMessage:
    """A payment event's outbox message with its body wrapped as a NestJS event packet.

    >>> to_packet(message).body
    b'{"pattern":"payment.approved","data":{"message_id":"…","schema_version":1,…}}'
    """
    data = json.loads(message.body)
    packet = {"pattern": message.routing_key, "data": data}
    return replace(message, body=json.dumps(packet, separators=(",", ":")).encode())


def outcome_from_packet(body: bytes, *, message_id: str = "") -> Envelope:
    """Decode an outcome packet a NestJS service emitted, or raise InvalidEnvelope.

    `message_id` is the AMQP property, if the sender set one. `data` holds the envelope's
    fields (as the payment event's `data` names them); `type` comes from `pattern`, and a
    missing `schema_version` means version 1, which is all a NestJS service writes.
    """
    try:
        packet = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEnvelope(f"NestJS packet is not JSON: {exc}") from exc
    if not is_packet(packet):
        raise InvalidEnvelope("not a NestJS packet: want an object with pattern and data")
    pattern, data = packet["pattern"], dict(packet["data"])
    if pattern not in {t.value for t in OUTCOME_TYPES}:
        raise InvalidEnvelope(f"NestJS packet pattern {pattern!r} is not an outcome")
    if data.setdefault("type", pattern) != pattern:
        raise InvalidEnvelope(f"data.type {data['type']!r} differs from pattern {pattern!r}")
    data.setdefault("schema_version", SCHEMA_VERSION)
    data["message_id"] = _message_id(data.get("message_id"), message_id)
    return Envelope.from_dict(data)


def is_packet(value: object) -> bool:
    """Whether `value` has NestJS's packet shape: an object with `pattern` and an object
    `data`. A payrelay envelope never has `pattern`, so the two cannot be confused."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("pattern"), str)
        and isinstance(value.get("data"), dict)
    )


def _message_id(in_data: object, in_property: str) -> str:
    """The one message id the outcome carries; without one it could not be deduplicated."""
    if in_data is None and not in_property:
        raise InvalidEnvelope(
            "NestJS outcome has no message id: send data.message_id (a UUID) or the "
            "AMQP message_id property, the same on every retry of one answer"
        )
    if not isinstance(in_data, str | None):
        raise InvalidEnvelope("data.message_id must be a UUID string")
    chosen = in_data or in_property
    parsed, other = _uuid(chosen), _uuid(in_property) if in_data and in_property else None
    if other is not None and other != parsed:
        raise InvalidEnvelope("data.message_id and the message_id property differ")
    return str(parsed)


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as exc:
        raise InvalidEnvelope(f"message id {text!r} is not a UUID") from exc


def decode_delivery(delivery: Delivery) -> Delivery:
    """`delivery` with a NestJS outcome packet turned into payrelay's envelope.

    Anything else (a payrelay envelope, or a packet that does not decode) is handed on
    as it came, for the consumer to apply or to keep as a dead letter with its reason.
    """
    try:
        envelope = outcome_from_packet(delivery.body, message_id=delivery.message_id)
    except InvalidEnvelope:
        return delivery
    headers = dict(delivery.headers)
    if not headers.get(_EXCHANGE_HEADER):
        # Sent to the queue itself (the default exchange): a replay of its dead letter
        # must go through the exchange payrelay publishes outcomes to.
        headers[_EXCHANGE_HEADER] = ORDERS_EXCHANGE
    return replace(
        delivery, message_id=str(envelope.message_id), routing_key=envelope.routing_key,
        body=envelope.to_json(), headers=headers,
    )


class NestJSPackets:
    """A `Transport` whose order side is a NestJS service: it wraps another transport.

    Payment events go out as NestJS packets; outcomes come in as NestJS packets (or as
    payrelay envelopes: both decode). The order side's own subscription is refused, since
    in this mode the NestJS service is the order side.
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    @property
    def wrapped(self) -> Transport:
        """The transport underneath, e.g. to delete its topology."""
        return self._transport

    async def publish(self, messages: Sequence[OutboundMessage]) -> PublishResult:
        return await self._transport.publish([
            to_packet(m) if m.exchange == PAYMENTS_EXCHANGE else m for m in messages
        ])

    async def subscribe(self, subscription: Subscription, handler: BatchHandler) -> None:
        _refuse_order_side(subscription)
        await self._transport.subscribe(subscription, _decoding(handler))

    async def subscribe_dead_letters(
        self, subscription: Subscription, handler: BatchHandler
    ) -> None:
        _refuse_order_side(subscription)
        await self._transport.subscribe_dead_letters(subscription, _decoding(handler))

    async def check(self) -> None:
        await self._transport.check()

    async def close(self) -> None:
        await self._transport.close()


def _decoding(handler: BatchHandler) -> BatchHandler:
    async def handle(batch: Sequence[Delivery]) -> None:
        await handler([decode_delivery(d) for d in batch])

    return handle


def _refuse_order_side(subscription: Subscription) -> None:
    if subscription.queue == ORDER_SIDE_SUBSCRIPTION.queue:
        raise ValueError(
            "PAYRELAY_ORDER_SIDE=nestjs: the NestJS service is the order side; run only "
            "payments roles (its queue is PAYRELAY_NESTJS_QUEUE)"
        )



async def connect_rabbitmq(
    url: str, *, nestjs: tuple[str, Mapping[str, Any]] | None, **options: Any
) -> Transport:
    """A connected `RabbitMQTransport`; with `nestjs` (queue, arguments), in NestJS mode.

    In NestJS mode payrelay declares the NestJS service's queue (with its arguments)
    instead of its own order-side queue, which nobody would consume, and wraps the
    transport in `NestJSPackets`. `options` are `RabbitMQTransport`'s.
    """
    if nestjs is None:
        transport = RabbitMQTransport(url, **options)
        await transport.connect()
        return transport
    queue, arguments = nestjs
    foreign = ForeignQueue(queue, PAYMENTS_EXCHANGE, ORDER_SIDE_SUBSCRIPTION.patterns, arguments)
    wanted = options.pop("subscriptions", (PAYMENTS_SIDE_SUBSCRIPTION,))
    transport = RabbitMQTransport(
        url, subscriptions=tuple(s for s in wanted if s != ORDER_SIDE_SUBSCRIPTION),
        foreign_queues=(foreign,), **options,
    )
    await transport.connect()
    return NestJSPackets(transport)
