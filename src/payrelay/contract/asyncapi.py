"""The AsyncAPI 3.0 document of payrelay's RabbitMQ topology, built from the code that
declares and publishes it.

Exchanges and patterns come from `payrelay.messaging`, queue names and arguments from the
transport's `Topology` (with the default settings), the AMQP properties and headers from the
very message the relay publishes (`rabbitmq_publish.amqp_message`), and which role declares
each queue from `system.ROLE_SUBSCRIPTIONS`. A header or property payrelay starts to send
with no description here raises `ContractError`.
"""

from __future__ import annotations

import inspect
import uuid
from typing import Any

from payrelay.adapters.transports import consumer_failures as failures
from payrelay.adapters.transports.rabbitmq import RabbitMQTransport
from payrelay.adapters.transports.rabbitmq_publish import ATTEMPT_HEADER, MANDATORY, amqp_message
from payrelay.adapters.transports.rabbitmq_topology import (
    DEAD_LETTER_EXCHANGE,
    RETRY_EXCHANGE,
    Topology,
)
from payrelay.config import Settings
from payrelay.contract.schemas import ContractError
from payrelay.domain.events import EventType
from payrelay.messaging import ORDERS_EXCHANGE, PAYMENTS_EXCHANGE
from payrelay.ports import OutboundMessage, Subscription
from payrelay.system import ROLE_SUBSCRIPTIONS

__all__ = ["HEADERS", "asyncapi_document", "channel_id"]

_AMQP = "0.3.0"  # the AMQP bindings' version
_FAILURE_NOTE = "Set by a payrelay consumer on the copies it moves to retry or dead-letter queues."
HEADERS: dict[str, tuple[dict[str, Any], str]] = {
    ATTEMPT_HEADER: ({"type": "integer", "minimum": 0},
                     "Earlier publishes of this message the broker did not confirm. "
                     "Informational: deduplicate on message_id, never on this."),
    failures.RETRIES_HEADER: ({"type": "string"}, "Delayed retries already spent. "
                              + _FAILURE_NOTE),
    failures.WAITS_HEADER: ({"type": "string"}, "Retries waited through outages (they spend "
                            "nothing). " + _FAILURE_NOTE),
    failures.REASON_HEADER: ({"type": "string"}, "Why it was given up on (dead letters)."),
    failures.ERROR_HEADER: ({"type": "string"}, "The consumer's last error (dead letters)."),
    failures.ATTEMPTS_HEADER: ({"type": "string"}, "Deliveries to the consumer, in all "
                               "(dead letters)."),
    failures.EXCHANGE_HEADER: ({"type": "string"}, "The exchange it was first published to, "
                               "unprefixed. " + _FAILURE_NOTE),
    failures.ROUTING_KEY_HEADER: ({"type": "string"}, "Its first routing key. "
                                  + _FAILURE_NOTE),
    "traceparent": ({"type": "string"}, "W3C trace context of the relay's publish span, only "
                    "with PAYRELAY_OTEL=true (the trace id is derived from correlation_id)."),
}
"""Header -> (schema, description), for every header payrelay writes."""
_PROPERTIES = {
    "message_id": "The envelope's message_id: the inbox key.",
    "correlation_id": "The envelope's correlation_id, `<provider>:<payment_id>`.",
    "type": "The envelope's type, which is also the routing key.",
    "content_type": "Always application/json (UTF-8).",
    "delivery_mode": "2: persistent; every queue is durable (quorum).",
}


def _topology() -> Topology:
    """The topology as a default deployment declares it (no name prefix)."""
    delays = Settings.model_fields["consumer_retry_delays"].default
    limit = inspect.signature(RabbitMQTransport).parameters["delivery_limit"].default
    return Topology("", limit, tuple(float(d) for d in str(delays).split(",")))


def _published_properties() -> dict[str, Any]:
    """The AMQP properties of a message as the relay publishes it: a fixed value, or
    (differing between two messages) taken from the envelope; raises for an unknown one."""
    first, second = (_set_properties(_outbound(n, t)) for n, t in (
        (1, EventType.PAYMENT_APPROVED), (2, EventType.ORDER_PAYMENT_APPLIED)))
    return {
        key: ({"value": _plain(first[key])} if first[key] == second.get(key)
              else {"example": _plain(first[key])}) | {"description": _PROPERTIES[key]}
        for key in _PROPERTIES if key in first
    }


def _outbound(n: int, kind: EventType) -> OutboundMessage:
    return OutboundMessage(message_id=uuid.UUID(int=n), exchange=PAYMENTS_EXCHANGE,
                           routing_key=kind.value, correlation_id=f"mercadopago:{n}",
                           body=b"{}", attempts=n)


def _set_properties(outbound: OutboundMessage) -> dict[str, Any]:
    message = amqp_message(outbound)
    found = {k: v for k, v in message.info().items()
             if v not in (None, {}, 0) and k not in ("headers", "body_size")}
    undescribed = sorted(set(found) - set(_PROPERTIES))
    unknown = sorted(set(message.headers or {}) - set(HEADERS))
    if undescribed or unknown:
        raise ContractError(f"the relay publishes AMQP properties {undescribed} and headers "
                            f"{unknown} that contract/asyncapi.py does not describe")
    return found


def _plain(value: object) -> object:
    return int(value) if isinstance(value, int) else str(value)


def channel_id(name: str) -> str:
    """AsyncAPI channel ids allow no dots: `orders.payment-events` -> `orders-payment-events`."""
    return name.replace(".", "-")


def _exchange_channel(exchange: str, prefix: str, kinds: list[str], message: str) -> Any:
    return {
        "address": f"{prefix}.{{event}}",
        "title": f"exchange {exchange}",
        "description": f"Topic exchange {exchange}; the routing key is the message type.",
        "parameters": {"event": {"enum": kinds}},
        "messages": {message: {"$ref": f"#/components/messages/{message}"}},
        "bindings": {"amqp": {
            "is": "routingKey", "bindingVersion": _AMQP,
            "exchange": {"name": exchange, "type": "topic", "durable": True,
                         "autoDelete": False, "vhost": "/"},
        }},
    }


def _queue(name: str, arguments: dict[str, Any], description: str, **extra: Any) -> Any:
    return {
        "address": name, "title": f"queue {name}", "description": description,
        "bindings": {"amqp": {
            "is": "queue", "bindingVersion": _AMQP,
            "queue": {"name": name, "durable": True, "exclusive": False,
                      "autoDelete": False, "vhost": "/"},
        }},
        "x-payrelay-queue-arguments": arguments, **extra,
    }


def _queue_channels(topology: Topology, role: str, sub: Subscription, message: str) -> Any:
    """The work queue a role consumes, its retry queues and its dead-letter queue."""
    queue = sub.queue
    channels = {channel_id(queue): _queue(
        queue, topology.work_queue_arguments(queue),
        f"Consumed, and declared, by the `{role}` role (or by your own service in its place: "
        "docs/integration.md). Quorum; a message past the delivery limit, or given up on, "
        f"goes to {topology.dead_letter_queue(queue)} through {DEAD_LETTER_EXCHANGE}.",
        messages={message: {"$ref": f"#/components/messages/{message}"}},
        **{"x-payrelay-bindings": [
            *({"exchange": sub.exchange, "routingKey": p} for p in sub.patterns),
            {"exchange": RETRY_EXCHANGE, "routingKey": queue},
        ]},
    )}
    for step, delay in enumerate(topology.retry_delays, start=1):
        name = topology.retry_queue(queue, step)
        channels[channel_id(name)] = _queue(
            name, topology.retry_queue_arguments(queue, delay),
            f"Retry step {step}: a failed message waits {delay:g} s, then returns to {queue} "
            f"through {RETRY_EXCHANGE}.",
            **{"x-payrelay-bindings": [{"exchange": RETRY_EXCHANGE, "routingKey": name}]})
    dlq = topology.dead_letter_queue(queue)
    channels[channel_id(dlq)] = _queue(
        dlq, topology.dead_letter_queue_arguments(),
        f"Dead letters of {queue}, stored in the consumer's database by `{role}`.",
        **{"x-payrelay-bindings": [{"exchange": DEAD_LETTER_EXCHANGE, "routingKey": queue}]})
    return channels


def _channels(topology: Topology) -> dict[str, Any]:
    payment_kinds = [t.value.removeprefix("payment.") for t in EventType if t.is_payment_event]
    order_kinds = [t.value.removeprefix("order.") for t in EventType if not t.is_payment_event]
    channels = {
        channel_id(PAYMENTS_EXCHANGE): _exchange_channel(
            PAYMENTS_EXCHANGE, "payment", payment_kinds, "paymentEvent"),
        channel_id(ORDERS_EXCHANGE): _exchange_channel(
            ORDERS_EXCHANGE, "order", order_kinds, "orderOutcome"),
    }
    for role, sub in ROLE_SUBSCRIPTIONS.items():
        message = "paymentEvent" if sub.exchange == PAYMENTS_EXCHANGE else "orderOutcome"
        channels |= _queue_channels(topology, role.value, sub, message)
    return channels


def _operation(action: str, channel: str, message: str, text: str, amqp: Any) -> Any:
    ref = channel_id(channel)
    return {
        "action": action, "description": text,
        "channel": {"$ref": f"#/channels/{ref}"},
        "messages": [{"$ref": f"#/channels/{ref}/messages/{message}"}],
        "bindings": {"amqp": {**amqp, "bindingVersion": _AMQP}},
    }


def _operations() -> dict[str, Any]:
    send = {"deliveryMode": 2, "mandatory": MANDATORY}
    order_queue, payments_queue = (s.queue for s in ROLE_SUBSCRIPTIONS.values())
    return {
        "publishPaymentEvent": _operation(
            "send", PAYMENTS_EXCHANGE, "paymentEvent",
            "The payments relay publishes each payments-outbox row with publisher confirms, "
            "mandatory: a message no queue takes is returned, left unconfirmed and sent again "
            "(same message_id) with backoff, logged each time; it never vanishes.", send),
        "consumePaymentEvents": _operation(
            "receive", order_queue, "paymentEvent",
            "The order side applies payment events (docs/integration.md has the rules); it "
            "acks only after its transaction committed.", {"ack": True}),
        "publishOrderOutcome": _operation(
            "send", ORDERS_EXCHANGE, "orderOutcome",
            "The order side answers each decided payment event, and repeats its recorded "
            "answer to a duplicate.", send),
        "consumeOrderOutcomes": _operation(
            "receive", payments_queue, "orderOutcome",
            "The outcome consumer records the answer and, on a rejection, the refund intent.",
            {"ack": True}),
    }


def _message(kind: str, name: str, headers: dict[str, Any], properties: Any) -> Any:
    return {
        "name": name, "title": kind, "contentType": "application/json",
        "payload": {"schemaFormat": "application/schema+json;version=draft-2020-12",
                    "schema": {"$ref": f"schemas/{kind}.schema.json"}},
        "headers": headers,
        "correlationId": {"location": "$message.payload#/correlation_id"},
        "bindings": {"amqp": {"bindingVersion": _AMQP}},
        "x-amqp-properties": properties,
    }


def asyncapi_document() -> dict[str, Any]:
    """The whole AsyncAPI 3.0 document, as a JSON-ready dict."""
    headers = {"type": "object", "properties": {
        name: {**schema, "description": text} for name, (schema, text) in HEADERS.items()}}
    properties = _published_properties()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "payrelay messages", "version": "1.0.0",
            "description": "What payrelay's payments side and an order side exchange over "
            "RabbitMQ. Generated by `payrelay contract --write docs/contract`: do not edit. "
            "Every exchange and queue name carries PAYRELAY_BROKER_NAME_PREFIX (empty by "
            "default); retry delays are PAYRELAY_CONSUMER_RETRY_DELAYS' default.",
        },
        "defaultContentType": "application/json",
        "servers": {"rabbitmq": {"host": "localhost:5672", "protocol": "amqp",
                                 "protocolVersion": "0.9.1",
                                 "description": "PAYRELAY_BROKER_URL"}},
        "channels": _channels(_topology()),
        "operations": _operations(),
        "components": {"messages": {
            "paymentEvent": _message("payment-event", "paymentEvent", headers, properties),
            "orderOutcome": _message("order-outcome", "orderOutcome", headers, properties),
        }},
    }
