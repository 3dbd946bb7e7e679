"""A broker that moves only when the state machine says so: the machine picks the interleaving.

`publish` puts each message in the queue of every subscription it routes to and confirms
it, as a durable RabbitMQ queue with publisher confirms does; a test can make the broker
lose the confirm (the message is queued, the relay is never told) or be down (nothing is
queued). Nothing is delivered on publish: `deliver` hands the handler the messages the
machine picked, in the order it picked them (a reorder), the same one twice if it picked
it twice (a duplicate), and removes them only once the handler returned and the ack is not
lost. A handler that raises leaves them queued, to be delivered again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from payrelay.adapters.transports.topic import topic_matches
from payrelay.domain.errors import TransportUnavailable
from payrelay.ports import BatchHandler, Delivery, OutboundMessage, PublishResult, Subscription


class PublishMode(StrEnum):
    CONFIRM = "confirm"
    """Queued and confirmed."""
    CONFIRM_LOST = "confirm_lost"
    """Queued, but the confirm never reaches the relay: it publishes the rows again."""
    DOWN = "down"
    """The broker is unreachable: nothing is queued, the relay is told so."""


@dataclass
class _Queue:
    subscription: Subscription
    handler: BatchHandler
    messages: list[OutboundMessage] = field(default_factory=list)
    delivered: set[uuid.UUID] = field(default_factory=set)  # handed over at least once

    def routes(self, message: OutboundMessage) -> bool:
        return message.exchange == self.subscription.exchange and any(
            topic_matches(p, message.routing_key) for p in self.subscription.patterns
        )


class SteppedBroker:
    """`Transport` whose deliveries the caller makes, one chosen batch at a time."""

    def __init__(self) -> None:
        self.mode = PublishMode.CONFIRM
        self._queues: dict[str, _Queue] = {}

    async def subscribe(self, subscription: Subscription, handler: BatchHandler) -> None:
        self._queues[subscription.queue] = _Queue(subscription, handler)

    async def subscribe_dead_letters(
        self, subscription: Subscription, handler: BatchHandler
    ) -> None:
        return None  # nothing is given up on here: a failed delivery stays queued

    async def publish(self, messages: Sequence[OutboundMessage]) -> PublishResult:
        if self.mode is PublishMode.DOWN:
            raise TransportUnavailable("the stepped broker is down")
        routed: set[uuid.UUID] = set()
        for queue in self._queues.values():
            batch = [m for m in messages if queue.routes(m)]
            queue.messages.extend(batch)
            routed.update(m.message_id for m in batch)
        return PublishResult(set() if self.mode is PublishMode.CONFIRM_LOST else routed)

    async def check(self) -> None:
        if self.mode is PublishMode.DOWN:
            raise TransportUnavailable("the stepped broker is down")

    async def close(self) -> None:
        self._queues.clear()

    def queued(self, subscription: Subscription) -> list[OutboundMessage]:
        return list(self._queues[subscription.queue].messages)

    async def deliver(
        self, subscription: Subscription, picks: Sequence[int], *, ack_lost: bool = False
    ) -> int:
        """Deliver the queued messages at `picks` (taken modulo the queue's length), as one
        batch in that order; ack them if the handler returns, unless the ack is lost.

        Returns how many were delivered; an exception from the handler propagates after
        the batch was left queued (a nack with requeue)."""
        queue = self._queues[subscription.queue]
        if not queue.messages:
            return 0
        batch = [queue.messages[i % len(queue.messages)] for i in picks]
        deliveries = [
            Delivery(
                message_id=str(m.message_id), routing_key=m.routing_key, body=m.body,
                redelivered=m.message_id in queue.delivered,
            )
            for m in batch
        ]
        queue.delivered.update(m.message_id for m in batch)
        await queue.handler(deliveries)
        if not ack_lost:
            acked = {id(m) for m in batch}  # these copies; another copy stays queued
            queue.messages = [m for m in queue.messages if id(m) not in acked]
        return len(batch)
