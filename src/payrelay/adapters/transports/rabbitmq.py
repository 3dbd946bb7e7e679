"""The RabbitMQ transport: publisher confirms out, batched at-least-once consumption in.

Publishing (rabbitmq_publish.py): a message is confirmed only when the broker acked it and
did not return it (`mandatory`), i.e. a durable queue holds it. A nack, return or timeout
leaves it out of the confirmed set: its outbox row stays pending and the relay sends it
again, same message id.

Consuming (rabbitmq_consumer.py): batches are acked once the handler returned; a message
that fails on its own goes through the `<queue>.retry.<n>` delay queues and then to
`<queue>.dlq` (rabbitmq_failures.py, deciding with consumer_failures.py as the in-process
transport does), never blocking the messages behind it. `subscribe_dead_letters` feeds the
DLQ, with each message's reason, to a handler that stores it for a person.

aio-pika's robust connection survives broker restarts and server-side closes: it reopens
the channels and restores QoS, topology and consumers. Messages unacked on a lost channel
come back from the broker; their stale local copies are dropped, not handled.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractQueue,
    AbstractRobustConnection,
)

from payrelay.adapters.transports.nestjs_queue import ForeignQueue, declare_foreign_queue
from payrelay.adapters.transports.rabbitmq_consumer import BROKER_ERRORS, BatchConsumer
from payrelay.adapters.transports.rabbitmq_failures import (
    RetryOrDeadLetter,
    confirmed_republish,
    dead_letter_delivery,
    requeue,
    work_delivery,
)
from payrelay.adapters.transports.rabbitmq_publish import ATTEMPT_HEADER, publish_confirmed
from payrelay.adapters.transports.rabbitmq_topology import PUBLISHED_EXCHANGES, Topology
from payrelay.domain.errors import TransportUnavailable
from payrelay.failure_log import FailureLog
from payrelay.messaging import STANDARD_SUBSCRIPTIONS
from payrelay.ports import BatchHandler, Clock, OutboundMessage, PublishResult, Subscription

__all__ = ["ATTEMPT_HEADER", "STANDARD_SUBSCRIPTIONS", "RabbitMQTransport"]

log = logging.getLogger(__name__)


def _wall_clock() -> datetime:
    return datetime.now(UTC)

# A dead-letter handler that fails has the database down: pause instead of spinning.
DEAD_LETTER_FAILURE_PAUSE_SECONDS = 1.0
_T = TypeVar("_T")
DeclareQueue = Callable[[AbstractChannel, str], Awaitable[AbstractQueue]]


@contextlib.contextmanager
def _unavailable_on_broker_errors(doing: str) -> Iterator[None]:
    """Translate aio-pika/aiormq/socket errors at this edge; the message has no URL."""
    try:
        yield
    except BROKER_ERRORS as exc:
        raise TransportUnavailable(f"{doing}: {type(exc).__name__}: {exc}") from exc


class RabbitMQTransport:
    """`Transport` over RabbitMQ; call `connect()` before use and `close()` at the end.

    >>> transport = RabbitMQTransport("amqp://guest:guest@127.0.0.1:5672/")
    >>> await transport.connect()   # declares exchanges and the standard subscriptions
    >>> confirmed = await transport.publish(batch)
    """

    def __init__(
        self,
        url: str,
        *,
        prefetch: int = 200,
        batch_max: int = 200,
        batch_linger_seconds: float = 0.005,
        confirm_timeout_seconds: float = 5.0,
        name_prefix: str = "",
        retry_delays: tuple[float, ...] = (1, 5, 30, 120, 600),
        delivery_limit: int = 20,
        subscriptions: Sequence[Subscription] = STANDARD_SUBSCRIPTIONS,
        connection_name: str | None = None,
        reconnect_interval_seconds: float = 5.0,
        clock: Clock = _wall_clock,
        foreign_queues: Sequence[ForeignQueue] = (),
        failure_log: FailureLog | None = None,
    ) -> None:
        if prefetch < 1 or batch_max < 1 or delivery_limit < 1:
            raise ValueError("prefetch, batch_max and delivery_limit must be positive")
        if confirm_timeout_seconds <= 0 or batch_linger_seconds < 0:
            raise ValueError("confirm_timeout_seconds must be > 0, batch_linger_seconds >= 0")
        self._url, self._clock, self._failure_log = url, clock, failure_log or FailureLog(clock)
        self._prefetch, self._batch_max, self._linger = prefetch, batch_max, batch_linger_seconds
        self._confirm_timeout = confirm_timeout_seconds
        self._topology = Topology(name_prefix, delivery_limit, tuple(retry_delays))
        self._subscriptions = tuple(subscriptions)
        self._foreign_queues = tuple(foreign_queues)  # another service's (NestJS mode)
        # Named after the prefix, so a test can find (and cut) its own connections.
        self._connection_name = connection_name or f"{name_prefix}payrelay"
        self._reconnect_interval = reconnect_interval_seconds
        self._connection: AbstractRobustConnection | None = None
        self._topology_channel: AbstractChannel | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}  # unprefixed name -> exchange
        self._declared = {s.queue: s for s in self._subscriptions}  # for delete_topology
        self._consumers: list[BatchConsumer] = []

    @property
    def topology(self) -> Topology:
        """The names and arguments in use, e.g. for an operator tool or a test's cleanup."""
        return self._topology

    async def connect(self) -> None:
        """Open the robust connection; declare the exchanges and the standard subscriptions.

        Declaring the subscriptions here, not only in `subscribe`, lets a relay that runs
        alone publish into durable queues instead of having every message returned.
        """
        try:
            with _unavailable_on_broker_errors("cannot connect to RabbitMQ"):
                self._connection = await aio_pika.connect_robust(
                    self._url,
                    client_properties={"connection_name": self._connection_name},
                    reconnect_interval=self._reconnect_interval,
                )
                self._topology_channel = await self._connection.channel()
                self._publish_channel = await self._connection.channel(
                    publisher_confirms=True, on_return_raises=False
                )
            await self.declare(self._subscriptions)
            with _unavailable_on_broker_errors("cannot declare the foreign queues"):
                for foreign in self._foreign_queues:
                    await declare_foreign_queue(self._topology_channel, self._topology, foreign)
        except TransportUnavailable:
            await self.close()  # or the robust connection would keep reconnecting
            raise

    async def declare(self, subscriptions: Iterable[Subscription]) -> None:
        """Declare the exchanges and each subscription's queues and bindings (idempotent)."""
        channel, publisher = self._require(self._topology_channel), self._publish_channel
        subs = tuple(subscriptions)
        with _unavailable_on_broker_errors("cannot declare the RabbitMQ topology"):
            await self._topology.declare(channel, subs)
            self._declared.update((s.queue, s) for s in subs)
            for name in [*PUBLISHED_EXCHANGES, *(s.exchange for s in subs)]:
                if name not in self._exchanges:
                    self._exchanges[name] = await self._require(publisher).get_exchange(
                        self._topology.name(name), ensure=False
                    )

    async def publish(self, messages: Sequence[OutboundMessage]) -> PublishResult:
        """Publish the batch concurrently; confirmed are the ids the broker acked and routed.

        Consumers' failures stay on the broker's side. A message no queue will take (an
        undeclared exchange, or returned as unroutable) is left unconfirmed and logged.

        Raises `TransportUnavailable` when the connection failed and nothing was confirmed;
        if some messages were confirmed before it failed, those are returned instead, so
        the relay does not send them twice.
        """
        if not messages:
            return PublishResult(set())
        await self.check()  # fail fast while reconnecting instead of waiting for it
        return PublishResult(await publish_confirmed(
            self._exchanges, messages, timeout=self._confirm_timeout))

    async def check(self) -> None:
        """Raise `TransportUnavailable` while the connection or publish channel is down."""
        connection = self._require(self._connection)
        channel = self._require(self._publish_channel)
        # The message is shown by /readyz: it names the state, never the URL.
        if connection.is_closed or not connection.connected.is_set():
            raise TransportUnavailable("RabbitMQ connection is down, reconnecting")
        if channel.is_closed:
            raise TransportUnavailable("RabbitMQ publish channel is closed, reopening")

    async def subscribe(self, subscription: Subscription, handler: BatchHandler) -> None:
        """Consume `subscription.queue` in batches on a channel of its own; a message that
        fails on its own is retried after each of `retry_delays`, then dead-lettered."""
        republish = confirmed_republish(self._require(self._publish_channel),
                                        timeout=self._confirm_timeout)
        on_failure = RetryOrDeadLetter(
            topology=self._topology, queue=subscription.queue, republish=republish,
            failure_log=self._failure_log, clock=self._clock,
        )
        consumer = BatchConsumer(handler, batch_max=self._batch_max, linger=self._linger,
                                 to_delivery=work_delivery, on_failure=on_failure)
        await self._consume(subscription, self._topology.declare_work_queue, consumer)

    async def subscribe_dead_letters(
        self, subscription: Subscription, handler: BatchHandler
    ) -> None:
        """Consume `<queue>.dlq` in batches: original routing key, x-payrelay-* headers.

        A batch is acked once `handler` returned; a failed one goes back to the DLQ.
        """
        to_delivery = functools.partial(
            dead_letter_delivery, topology=self._topology, subscription=subscription
        )
        consumer = BatchConsumer(handler, batch_max=self._batch_max, linger=self._linger,
                                 to_delivery=to_delivery, on_failure=requeue,
                                 failure_pause=DEAD_LETTER_FAILURE_PAUSE_SECONDS)
        await self._consume(subscription, self._topology.declare_dead_letter_queue, consumer)

    async def _consume(
        self, subscription: Subscription, declare_queue: DeclareQueue, consumer: BatchConsumer
    ) -> None:
        connection = self._require(self._connection)
        await self.declare([subscription])
        with _unavailable_on_broker_errors(f"cannot consume {subscription.queue!r}"):
            # Declared through this channel (same arguments as in `declare`) so that the
            # robust channel re-declares it and restores the consumer after a reconnect.
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self._prefetch)
            queue = await declare_queue(channel, subscription.queue)
            await queue.consume(consumer.on_message)
        consumer.start(f"rabbitmq-consumer:{queue.name}")
        self._consumers.append(consumer)

    async def delete_topology(self) -> None:
        """Delete every exchange and queue of this topology, messages included.

        For scratch runs and tests. It uses a connection of its own, so it works before
        `connect()` and after `close()`; call it after `close()`, or the broker cancels
        this transport's consumers under it.
        """
        subscriptions = tuple(self._declared.values())
        with _unavailable_on_broker_errors("cannot delete the RabbitMQ topology"):
            connection = await aio_pika.connect(
                self._url, client_properties={"connection_name": self._connection_name}
            )
            try:
                channel = await connection.channel()
                await self._topology.delete(channel, subscriptions)
                for foreign in self._foreign_queues:
                    await channel.queue_delete(self._topology.name(foreign.queue))
            finally:
                await connection.close()

    async def close(self) -> None:
        """Stop the consumers after their batch in hand, then disconnect.

        Messages that were delivered but not yet handed to a handler go back to their
        queue when the connection closes.
        """
        consumers, self._consumers = self._consumers, []
        for consumer in consumers:
            await consumer.stop()
        connection, self._connection = self._connection, None
        self._topology_channel = self._publish_channel = None
        self._exchanges.clear()
        if connection is not None:
            with _unavailable_on_broker_errors("closing the RabbitMQ connection failed"):
                await connection.close()

    @staticmethod
    def _require(resource: _T | None) -> _T:
        if resource is None:
            raise TransportUnavailable("RabbitMQTransport is not connected: call connect()")
        return resource

