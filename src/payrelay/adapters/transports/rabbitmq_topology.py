"""The exchanges and queues payrelay uses on RabbitMQ: their names, arguments and bindings.

Everything is durable and declared idempotently, so any process (a relay alone, a consumer
alone) may declare it on start and find the same topology. Declaring a queue again with
different arguments fails with PRECONDITION_FAILED: changing one needs a migration (a new
queue name or a policy), never a silent redeclare.

    <p>payrelay.payments, <p>payrelay.orders   topic     what the relays publish to
    <p><queue>                                   quorum    bound by the subscription's patterns
    <p>payrelay.dlx   --<p><queue>-->  <p><queue>.dlq      given up on: out of retries, or
                                                          past the delivery limit
    <p>payrelay.retry --<p><queue>.retry.<n>-->  <p><queue>.retry.<n>  --ttl-->
        <p>payrelay.retry  --<p><queue>-->  <p><queue>    delayed retries, one queue per step
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractQueue

from payrelay.ports import Subscription

__all__ = ["DEAD_LETTER_EXCHANGE", "PUBLISHED_EXCHANGES", "RETRY_EXCHANGE", "Topology"]

PUBLISHED_EXCHANGES = ("payrelay.payments", "payrelay.orders")
DEAD_LETTER_EXCHANGE = "payrelay.dlx"
RETRY_EXCHANGE = "payrelay.retry"

Arguments = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Topology:
    """Names (all carrying `prefix`, so test runs never share a queue) and queue arguments."""

    prefix: str
    delivery_limit: int
    retry_delays: tuple[float, ...]

    def name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    def base_name(self, name: str) -> str:
        """`name` without the prefix, as payrelay's own messages name exchanges."""
        return name.removeprefix(self.prefix) if self.prefix else name

    def dead_letter_queue(self, queue: str) -> str:
        return self.name(f"{queue}.dlq")

    def retry_queue(self, queue: str, step: int) -> str:
        """The queue holding a message `retry_delays[step - 1]` seconds (steps count from 1)."""
        return self.name(f"{queue}.retry.{step}")

    def work_queue_arguments(self, queue: str) -> Arguments:
        # at-least-once dead lettering keeps a message in the work queue until the DLQ has
        # confirmed it (quorum queues only, and only with reject-publish): a poison message
        # is moved, never dropped on the way.
        return {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": self.name(DEAD_LETTER_EXCHANGE),
            "x-dead-letter-routing-key": self.name(queue),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            "x-delivery-limit": self.delivery_limit,
        }

    def retry_queue_arguments(self, queue: str, delay: float) -> Arguments:
        # Expired messages go back to the work queue through the retry exchange, which
        # routes by the work queue's name; at-least-once so none is lost on the way back.
        return {
            "x-queue-type": "quorum",
            "x-message-ttl": round(delay * 1000),
            "x-dead-letter-exchange": self.name(RETRY_EXCHANGE),
            "x-dead-letter-routing-key": self.name(queue),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def dead_letter_queue_arguments(self) -> Arguments:
        # No TTL, no limit: a dead letter waits for its handler (or a person) for ever.
        return {"x-queue-type": "quorum"}

    def topic_exchanges(self, subscriptions: tuple[Subscription, ...] = ()) -> list[str]:
        """The exchanges messages are published to (prefixed), the standard ones first."""
        bases = [*PUBLISHED_EXCHANGES, *(s.exchange for s in subscriptions)]
        return list(dict.fromkeys(self.name(b) for b in bases))

    def exchanges(self, subscriptions: tuple[Subscription, ...] = ()) -> list[str]:
        """Every exchange name (prefixed), e.g. to delete them all."""
        dead_letter, retry = self.name(DEAD_LETTER_EXCHANGE), self.name(RETRY_EXCHANGE)
        return [*self.topic_exchanges(subscriptions), dead_letter, retry]

    def queues(self, subscription: Subscription) -> list[str]:
        """Every queue name (prefixed) that `subscription` owns."""
        retries = (self.retry_queue(subscription.queue, n) for n, _ in self._steps())
        return [
            self.name(subscription.queue),
            self.dead_letter_queue(subscription.queue),
            *retries,
        ]

    def _steps(self) -> Iterator[tuple[int, float]]:
        return enumerate(self.retry_delays, start=1)

    async def declare(
        self, channel: AbstractChannel, subscriptions: tuple[Subscription, ...]
    ) -> None:
        """The exchanges, then each subscription's queues and bindings (idempotent)."""
        for name in self.topic_exchanges(subscriptions):
            await channel.declare_exchange(name, ExchangeType.TOPIC, durable=True)
        for name in (DEAD_LETTER_EXCHANGE, RETRY_EXCHANGE):
            await channel.declare_exchange(self.name(name), ExchangeType.DIRECT, durable=True)
        for subscription in subscriptions:
            await self.declare_subscription(channel, subscription)

    async def declare_subscription(
        self, channel: AbstractChannel, subscription: Subscription
    ) -> None:
        """The work queue with its bindings, its dead-letter queue and its retry queues.

        The exchanges must exist already: `declare` creates them first.
        """
        queue = subscription.queue
        work = await self.declare_work_queue(channel, queue)
        for pattern in subscription.patterns:
            await work.bind(self.name(subscription.exchange), pattern)
        await work.bind(self.name(RETRY_EXCHANGE), self.name(queue))
        dlq = await self.declare_dead_letter_queue(channel, queue)
        await dlq.bind(self.name(DEAD_LETTER_EXCHANGE), self.name(queue))
        for step, delay in self._steps():
            retry = await channel.declare_queue(
                self.retry_queue(queue, step),
                durable=True,
                arguments=self.retry_queue_arguments(queue, delay),
            )
            # The consumer publishes a failed message here with the queue's own name as
            # routing key; expired, it goes back through the work queue's binding above.
            await retry.bind(self.name(RETRY_EXCHANGE), self.retry_queue(queue, step))

    async def declare_work_queue(self, channel: AbstractChannel, queue: str) -> AbstractQueue:
        """Declare (idempotently) and return the work queue, e.g. to consume from it."""
        return await channel.declare_queue(
            self.name(queue), durable=True, arguments=self.work_queue_arguments(queue)
        )

    async def declare_dead_letter_queue(
        self, channel: AbstractChannel, queue: str
    ) -> AbstractQueue:
        """Declare (idempotently) and return `queue`'s dead-letter queue."""
        return await channel.declare_queue(
            self.dead_letter_queue(queue), durable=True,
            arguments=self.dead_letter_queue_arguments(),
        )

    async def delete(
        self, channel: AbstractChannel, subscriptions: tuple[Subscription, ...]
    ) -> None:
        """Delete the subscriptions' queues (messages and all), then every exchange."""
        for subscription in subscriptions:
            for queue in self.queues(subscription):
                await channel.queue_delete(queue)
        for exchange in self.exchanges(subscriptions):
            await channel.exchange_delete(exchange)
