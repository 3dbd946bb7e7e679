"""Dead letters from a transport, stored where `payrelay dlq` and the admin API find them.

A consumer that gives up on a message (its retry schedule spent) hands it, with its
x-payrelay-* verdict headers, to the handler subscribed with `subscribe_dead_letters`:
RabbitMQ from `<queue>.dlq`, the in-process transport directly. This sink stores each one
in the dead_letters table of the database that consumer writes to, on either transport;
the message is settled (acked from the DLQ, or confirmed to the relay) only after the
commit. From there it is inspected and replayed like any other dead letter.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from payrelay.domain.errors import InvalidEnvelope
from payrelay.domain.events import Envelope
from payrelay.failure_log import payment_fields_in
from payrelay.ports import Clock, Delivery, MessagingUnitOfWork, Subscription, TimelineEntry
from payrelay.ports.metrics import Metrics, NoMetrics

BROKER_REASON = "dead-lettered by the broker"

log = logging.getLogger("payrelay.events")


class DeadLetterSink:
    def __init__(
        self, *, uow: MessagingUnitOfWork, subscription: Subscription, clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self._uow = uow
        self._metrics = metrics or NoMetrics()
        self._subscription = subscription
        self._clock = clock
        self.stored = 0

    async def handle(self, batch: Sequence[Delivery]) -> None:
        async with self._uow.begin() as tx:
            now = self._clock()
            for delivery in batch:
                await tx.dead_letters.add(
                    delivery,
                    subscription=self._subscription,
                    reason=delivery.headers.get("x-payrelay-reason", BROKER_REASON),
                    error=delivery.headers.get("x-payrelay-error", ""),
                    at=now,
                )
            await tx.timeline.record_many([_dead(d, now) for d in batch])
        self.stored += len(batch)
        self._metrics.dead_lettered(subscription=self._subscription.queue, count=len(batch))
        for delivery in batch:
            log.info("dead letter created", extra={
                **payment_fields_in(delivery.body), "message_id": delivery.message_id,
                "routing_key": delivery.routing_key, "subscription": self._subscription.queue,
                "reason": delivery.headers.get("x-payrelay-reason", BROKER_REASON)})


def _dead(delivery: Delivery, at: datetime) -> TimelineEntry:
    """The dead letter's row in its order's timeline (none named if the body is poison)."""
    try:
        envelope: Envelope | None = Envelope.from_json(delivery.body)
    except InvalidEnvelope:
        envelope = None
    reason = delivery.headers.get("x-payrelay-reason", BROKER_REASON)
    return TimelineEntry(
        "message.dead", at, envelope.order_id if envelope else None,
        envelope.payment_id if envelope else None,
        f"{delivery.routing_key}: {reason}; payrelay dlq list",
    )
