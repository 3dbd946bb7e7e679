"""Publishing a batch to RabbitMQ with publisher confirms, for the relay.

A message is confirmed only when the broker acked it and did not return it (`mandatory`),
i.e. a durable queue holds it. A nack, return or timeout leaves it out of the confirmed set:
its outbox row stays pending and the relay sends it again, same message id.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence

import aio_pika
import aiormq
from aio_pika.abc import AbstractExchange
from aio_pika.exceptions import DeliveryError

from payrelay.adapters.transports.rabbitmq_consumer import BROKER_ERRORS
from payrelay.domain.errors import TransportUnavailable
from payrelay.ports import OutboundMessage

__all__ = ["ATTEMPT_HEADER", "publish_confirmed"]

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-payrelay-attempt"

# TimeoutError is an OSError too: test for it (and DeliveryError, an AMQPError) first.
# aiormq cancels the confirmations of a channel it is closing; had the publishing task
# itself been cancelled, gather would have raised instead of returning the results.
_LOST_PUBLISH = (*BROKER_ERRORS, asyncio.CancelledError)


async def publish_confirmed(
    exchanges: Mapping[str, AbstractExchange],
    messages: Sequence[OutboundMessage],
    *,
    timeout: float,
) -> set[uuid.UUID]:
    """Publish concurrently to `exchanges` (unprefixed name -> exchange); the confirmed ids.

    A message no queue will take (an undeclared exchange, or returned as unroutable) is
    left unconfirmed and logged. Raises `TransportUnavailable` if the connection failed
    and nothing was confirmed.
    """
    # aiormq matches a returned message to its publish by message id: ids must be unique.
    batch = list({m.message_id: m for m in messages}.values())
    # Publishing to an exchange that does not exist closes the channel (404) and fails
    # every other publish in flight on it, so such a message is left unconfirmed here.
    for m in batch:
        if m.exchange not in exchanges:
            log.warning("message %s unroutable: no exchange %r is declared",
                        m.message_id, m.exchange)
    routable = [m for m in batch if m.exchange in exchanges]
    results = await asyncio.gather(
        *(_publish_one(exchanges[m.exchange], m, timeout=timeout) for m in routable),
        return_exceptions=True,
    )
    return _confirmed(routable, results)


async def _publish_one(
    exchange: AbstractExchange, message: OutboundMessage, *, timeout: float
) -> object:
    amqp_message = aio_pika.Message(
        message.body,
        message_id=str(message.message_id),
        correlation_id=message.correlation_id,
        type=message.routing_key,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={**message.headers, ATTEMPT_HEADER: message.attempts},  # e.g. traceparent
    )
    # aio-pika's own timeout starts only once the channel is there; a publish racing a
    # reconnect would wait for it without bound, so the whole call gets the deadline.
    async with asyncio.timeout(timeout):
        return await exchange.publish(amqp_message, message.routing_key, mandatory=True)


def _confirmed(messages: Sequence[OutboundMessage], results: Sequence[object]) -> set[uuid.UUID]:
    """The ids the broker acked and routed, from each publish's result or exception."""
    confirmed: set[uuid.UUID] = set()
    lost: BaseException | None = None
    for message, result in zip(messages, results, strict=True):
        if isinstance(result, aiormq.spec.Basic.Ack):
            confirmed.add(message.message_id)
        elif isinstance(result, aiormq.abc.DeliveredMessage):  # returned: no queue bound
            log.warning("message %s unroutable: no queue is bound for %r on %r",
                        message.message_id, message.routing_key, message.exchange)
        elif isinstance(result, TimeoutError | DeliveryError):
            log.debug("message %s not confirmed: %r", message.message_id, result)
        elif isinstance(result, _LOST_PUBLISH):
            lost = result
        elif isinstance(result, BaseException):
            raise result  # a bug or a cancellation, not a broker answer
    if lost is not None and not confirmed:
        raise TransportUnavailable(
            f"RabbitMQ publish failed: {type(lost).__name__}: {lost}"
        ) from lost
    return confirmed
