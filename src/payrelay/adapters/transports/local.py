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
from payrelay.domain.retry import FailureKind, failure_kind
from payrelay.ports import (
    BatchHandler,
    Delivery,
    OutboundMessage,
    PublishResult,
    Refusal,
    Subscription,
)

log = logging.getLogger(__name__)


class LocalTransport:
    def __init__(self) -> None:
        self._subscribers: list[tuple[Subscription, BatchHandler]] = []

    async def subscribe(self, subscription: Subscription, handler: BatchHandler) -> None:
        self._subscribers.append((subscription, handler))

    async def publish(self, messages: Sequence[OutboundMessage]) -> PublishResult:
        routed: set[uuid.UUID] = set()
        refused: dict[uuid.UUID, Refusal] = {}
        for subscription, handler in self._subscribers:
            batch = [m for m in messages if _routes_to(m, subscription)]
            if not batch:
                continue
            routed.update(m.message_id for m in batch)
            failure = await _handled(handler, batch, subscription)
            if failure is None:
                continue
            if failure.kind is FailureKind.UNAVAILABLE:
                # The consumer's database is down: trying each message alone would only
                # knock on it once more per message. The whole batch waits it out.
                refused.update((m.message_id, failure) for m in batch)
                continue
            # The batch's transaction rolled back as a whole: find the messages that fail
            # on their own, so one poison message does not hold back its neighbours.
            for message in batch:
                error = await _handled(handler, [message], subscription)
                if error is not None:
                    refused[message.message_id] = error
        return PublishResult(confirmed=routed - refused.keys(), refused=refused)

    async def subscribe_dead_letters(
        self, subscription: Subscription, handler: BatchHandler
    ) -> None:
        return None  # the relay writes this transport's dead letters itself

    async def check(self) -> None:
        return None  # in-process: available whenever this process is

    async def close(self) -> None:
        self._subscribers.clear()


async def _handled(
    handler: BatchHandler, batch: list[OutboundMessage], subscription: Subscription
) -> Refusal | None:
    """None if the handler committed the batch, else the failure (logged by the relay)."""
    try:
        await handler([_delivery(m) for m in batch])
    except Exception as exc:  # a consumer failure is a nack: the rows stay pending
        log.debug("consumer %s failed on %d messages: %r", subscription.queue, len(batch), exc)
        return Refusal(f"{type(exc).__name__}: {exc}", failure_kind(exc))
    return None


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
