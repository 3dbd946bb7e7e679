"""The embedded transport: delivers in-process and confirms only after the handler committed.

This is stronger than a broker's publisher confirm (which only says the broker has it):
a message whose consumer failed is simply not confirmed, so it stays pending in the outbox
and the relay delivers it again later. A message nobody subscribed to is unroutable and
likewise stays pending, as a `mandatory` publish returned by RabbitMQ would.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from payrelay.adapters.transports.topic import topic_matches
from payrelay.ports import BatchHandler, Delivery, OutboundMessage, Subscription

log = logging.getLogger(__name__)


class LocalTransport:
    def __init__(self) -> None:
        self._subscribers: list[tuple[Subscription, BatchHandler]] = []

    async def subscribe(self, subscription: Subscription, handler: BatchHandler) -> None:
        self._subscribers.append((subscription, handler))

    async def publish(self, messages: Sequence[OutboundMessage]) -> set[uuid.UUID]:
        routed: set[uuid.UUID] = set()
        failed: set[uuid.UUID] = set()
        for subscription, handler in self._subscribers:
            batch = [m for m in messages if _routes_to(m, subscription)]
            if not batch:
                continue
            routed.update(m.message_id for m in batch)
            try:
                await handler([_delivery(m) for m in batch])
            except Exception as exc:  # a consumer failure is a nack: the rows stay pending
                log.warning(
                    "consumer %s failed on %d messages: %s: %s",
                    subscription.queue, len(batch), type(exc).__name__, exc,
                )
                failed.update(m.message_id for m in batch)
        return routed - failed

    async def check(self) -> None:
        return None  # in-process: available whenever this process is

    async def close(self) -> None:
        self._subscribers.clear()


def _routes_to(message: OutboundMessage, subscription: Subscription) -> bool:
    return message.exchange == subscription.exchange and any(
        topic_matches(p, message.routing_key) for p in subscription.patterns
    )


def _delivery(message: OutboundMessage) -> Delivery:
    return Delivery(
        message_id=str(message.message_id),
        routing_key=message.routing_key,
        body=message.body,
        redelivered=message.attempts > 0,
    )
