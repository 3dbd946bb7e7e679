"""Moving messages between the two services: publish with confirms, consume with acks."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from payrelay.domain.retry import FailureKind


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    message_id: uuid.UUID
    exchange: str
    routing_key: str
    correlation_id: str
    body: bytes
    attempts: int = 0
    """Earlier tries that failed, of any kind: the outbox keeps this one count."""
    order_id: str | None = None
    payment_id: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    message_id: str
    routing_key: str
    body: bytes
    redelivered: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an in-process consumer failed on a message, and what kind of failure it was."""

    error: str
    kind: FailureKind


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What became of a published batch.

    `confirmed`: safely delivered (broker holds it, or the in-process consumer committed).
    `refused`: the in-process consumer failed on it; the relay applies `decide_retry` to
    the refusal's kind. Anything in neither set met a transport problem and is retried for
    as long as it lasts, never dead-lettered for it.
    """

    confirmed: set[uuid.UUID]
    refused: dict[uuid.UUID, Refusal] = field(default_factory=dict)


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

        The in-process transport has none: its dead letters are written by the relay."""
        ...

    async def check(self) -> None:
        """Raise TransportUnavailable unless the transport can publish right now."""
        ...

    async def close(self) -> None: ...
