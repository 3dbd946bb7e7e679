"""Moving messages between the two services: publish with confirms, consume with acks."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    message_id: uuid.UUID
    exchange: str
    routing_key: str
    correlation_id: str
    body: bytes
    attempts: int = 0
    """Earlier publishes the transport did not confirm (it paces the relay's backoff)."""
    order_id: str | None = None
    payment_id: str | None = None
    created_at: datetime | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    """Headers the transport carries to the consumer as they are (`traceparent`)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    message_id: str
    routing_key: str
    body: bytes
    redelivered: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What became of a published batch.

    `confirmed`: safely delivered (a durable broker queue holds it, or the in-process
    consumer committed it or stored it as a dead letter). Anything else is retried by the
    relay for as long as it takes, never dead-lettered by it: what becomes of a message
    its consumer fails on is the consumer side's to decide (its retry schedule, then its
    own database's dead letters).
    """

    confirmed: set[uuid.UUID]


BatchHandler = Callable[[Sequence[Delivery]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Subscription:
    queue: str
    exchange: str
    patterns: tuple[str, ...]  # topic patterns, e.g. ("payment.*",)


class Transport(Protocol):
    """Moves messages between the services; confirms only what is safely delivered."""

    async def publish(self, messages: Sequence[OutboundMessage]) -> PublishResult:
        """Publish a batch; only what comes back confirmed may be marked sent."""
        ...

    async def subscribe(self, subscription: Subscription, handler: BatchHandler) -> None:
        """Deliver matching messages to `handler`; a batch is acked only if it returns."""
        ...

    async def subscribe_dead_letters(
        self, subscription: Subscription, handler: BatchHandler
    ) -> None:
        """Deliver messages that `subscription`'s consumer gave up on, with headers
        x-payrelay-reason, x-payrelay-error, x-payrelay-attempts, x-payrelay-exchange.

        A consumer gives up on a message after its retry schedule (a failure that counts
        takes the next step; an outage waits without spending one), or at once for a
        permanent failure past its tries. `handler` stores it in the consumer's database;
        only then is the message settled (acked from the DLQ; confirmed to the relay)."""
        ...

    async def check(self) -> None:
        """Raise TransportUnavailable unless the transport can publish right now."""
        ...

    async def close(self) -> None: ...
