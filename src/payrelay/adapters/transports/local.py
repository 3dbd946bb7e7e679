"""The embedded transport: delivers in-process and confirms only once the consumer is done.

This is stronger than a broker's publisher confirm (which only says the broker has it): a
message is confirmed when its consumer committed it, or gave up on it and its dead letter
is stored in the consumer's own database. Until then it stays pending in the producer's
outbox, so nothing is lost if the process dies, and the relay publishes it again later.

What becomes of a message its consumer failed on is decided here, on the consumer's side,
by the same `ConsumerFailures` RabbitMQ's consumers use (consumer_failures.py): an outage
waits without spending a step; a failure that counts takes the next step of the consumer's
retry schedule; then the dead letter goes to the handler given to `subscribe_dead_letters`
with the x-payrelay-* headers RabbitMQ's DLQ carries. A message is not delivered before its
retry is due: published earlier, it is left unconfirmed and comes back with the relay.

The retry state (steps spent, waits, first failure, next due time) lives in memory, keyed
by message id. A restart forgets it: the message starts its schedule again from the first
step, and the consumer's inbox makes any repeated delivery harmless.

A message nobody subscribed to is unroutable and likewise stays pending, as a `mandatory`
publish returned by RabbitMQ would.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from payrelay.adapters.transports.consumer_failures import (
    ROUTING_KEY_HEADER,
    ConsumerFailures,
    Refusal,
    count_headers,
    failures_in,
)
from payrelay.adapters.transports.topic import topic_matches
from payrelay.domain.retry import RetrySchedule
from payrelay.failure_log import FailureLog
from payrelay.ports import (
    BatchHandler,
    Clock,
    Delivery,
    OutboundMessage,
    PublishResult,
    Subscription,
)

__all__ = ["LocalTransport"]

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LocalTransport:
    """`Transport` in-process; `schedule` is the consumers' retry schedule.

    >>> transport = LocalTransport(schedule=RetrySchedule((1, 5, 30)))
    >>> await transport.subscribe(ORDER_SIDE_SUBSCRIPTION, consumer.handle)
    >>> await transport.subscribe_dead_letters(ORDER_SIDE_SUBSCRIPTION, sink.handle)
    """

    def __init__(
        self,
        *,
        schedule: RetrySchedule | None = None,
        failure_log: FailureLog | None = None,
        clock: Clock = _utc_now,
    ) -> None:
        self._schedule = schedule or RetrySchedule()
        self._failure_log = failure_log or FailureLog(clock)
        self._clock = clock
        self._queues: list[_Queue] = []
        self._dead_letter_handlers: dict[str, BatchHandler] = {}

    async def subscribe(self, subscription: Subscription, handler: BatchHandler) -> None:
        failures = ConsumerFailures(
            queue=subscription.queue, schedule=self._schedule, failure_log=self._failure_log
        )
        self._queues.append(_Queue(subscription, handler, failures))

    async def subscribe_dead_letters(
        self, subscription: Subscription, handler: BatchHandler
    ) -> None:
        self._dead_letter_handlers[subscription.queue] = handler

    async def publish(self, messages: Sequence[OutboundMessage]) -> PublishResult:
        routed: set[uuid.UUID] = set()
        unsettled: set[uuid.UUID] = set()
        for queue in self._queues:
            batch = [m for m in messages if queue.routes(m)]
            if not batch:
                continue
            routed.update(m.message_id for m in batch)
            sink = self._dead_letter_handlers.get(queue.subscription.queue)
            unsettled |= await queue.deliver(batch, now=self._clock(), sink=sink)
        return PublishResult(confirmed=routed - unsettled)

    async def check(self) -> None:
        return None  # in-process: available whenever this process is

    async def close(self) -> None:
        self._queues.clear()
        self._dead_letter_handlers.clear()


@dataclass
class _Retry:
    """What a message its consumer failed on has been through, in this process."""

    first_failed_at: datetime
    due: datetime
    retries: int = 0
    waits: int = 0
    dead_letter: Delivery | None = None
    """Set once the consumer gave up on it, until the dead-letter handler stored it."""


class _Queue:
    """One subscription: its handler, its failure policy and its messages' retry state."""

    def __init__(
        self, subscription: Subscription, handler: BatchHandler, failures: ConsumerFailures
    ) -> None:
        self.subscription = subscription
        self._handler = handler
        self._failures = failures
        self._retries: dict[uuid.UUID, _Retry] = {}

    def routes(self, message: OutboundMessage) -> bool:
        return message.exchange == self.subscription.exchange and any(
            topic_matches(p, message.routing_key) for p in self.subscription.patterns
        )

    async def deliver(
        self, batch: Sequence[OutboundMessage], *, now: datetime, sink: BatchHandler | None
    ) -> set[uuid.UUID]:
        """Hand the due messages to the handler; the ids that are not settled yet."""
        due = [m for m in batch if self._is_due(m.message_id, now)]
        unsettled = {m.message_id for m in batch} - {m.message_id for m in due}
        fresh = [m for m in due if not self._given_up(m.message_id)]
        for message, refusal in zip(fresh, await failures_in(fresh, self._handle), strict=True):
            if refusal is None:
                self._retries.pop(message.message_id, None)
            else:
                self._failed(message, refusal, now)
        dead = [m for m in due if self._given_up(m.message_id)]
        unsettled |= await self._store_dead_letters(dead, sink)
        unsettled |= {m.message_id for m in due if m.message_id in self._retries}
        return unsettled

    def _is_due(self, message_id: uuid.UUID, now: datetime) -> bool:
        retry = self._retries.get(message_id)
        return retry is None or retry.due <= now

    def _given_up(self, message_id: uuid.UUID) -> bool:
        retry = self._retries.get(message_id)
        return retry is not None and retry.dead_letter is not None

    async def _handle(self, batch: Sequence[OutboundMessage]) -> Refusal | None:
        """None if the handler committed the batch, else its failure (logged when decided)."""
        try:
            await self._handler([self._delivery(m) for m in batch])
        except Exception as exc:  # a consumer failure is a nack: the rows stay pending
            log.debug("consumer %s failed on %d messages: %r",
                      self.subscription.queue, len(batch), exc)
            return Refusal.of(exc)
        return None

    def _failed(self, message: OutboundMessage, refusal: Refusal, now: datetime) -> None:
        """Record the verdict on a failed delivery: wait for its next step, or dead."""
        retry = self._retries.setdefault(message.message_id, _Retry(now, now))
        verdict = self._failures.decide(
            refusal, retries=retry.retries, waits=retry.waits,
            age=now - retry.first_failed_at, now=now, body=message.body,
        )
        retry.retries, retry.waits = verdict.retries, verdict.waits
        retry.due = now + timedelta(seconds=verdict.delay)
        if verdict.dead:
            headers = verdict.dead_letter_headers(refusal, exchange=message.exchange)
            retry.dead_letter = Delivery(
                message_id=str(message.message_id),
                routing_key=message.routing_key,
                body=message.body,
                headers={**verdict.count_headers(), **headers,
                         ROUTING_KEY_HEADER: message.routing_key},
            )

    async def _store_dead_letters(
        self, dead: Sequence[OutboundMessage], sink: BatchHandler | None
    ) -> set[uuid.UUID]:
        """Hand the dead letters to `sink`; the ids it did not store (they stay unconfirmed)."""
        if not dead:
            return set()
        if sink is None:
            log.warning("consumer %s gave up on %d messages but no dead-letter handler is "
                        "subscribed: left unconfirmed", self.subscription.queue, len(dead))
            return {m.message_id for m in dead}
        letters = {m.message_id: self._retries[m.message_id].dead_letter for m in dead}

        async def store(batch: Sequence[uuid.UUID]) -> Refusal | None:
            try:
                await sink([letter for i in batch if (letter := letters[i]) is not None])
            except Exception as exc:  # its database is down: try again on the next publish
                log.warning("dead letters of %s not stored: %r", self.subscription.queue, exc)
                return Refusal.of(exc)
            return None

        ids = list(letters)
        failed = {i for i, error in zip(ids, await failures_in(ids, store), strict=True)
                  if error is not None}
        for message_id in set(ids) - failed:
            del self._retries[message_id]
        return failed

    def _delivery(self, message: OutboundMessage) -> Delivery:
        retry = self._retries.get(message.message_id)
        return Delivery(
            message_id=str(message.message_id),
            routing_key=message.routing_key,
            body=message.body,
            redelivered=message.attempts > 0 or retry is not None,
            # The message's own headers (traceparent) as RabbitMQ would carry them.
            headers=message.headers if retry is None
            else {**message.headers, **count_headers(retry.retries, retry.waits)},
        )
