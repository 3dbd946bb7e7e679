"""The queue a NestJS service consumes payment events from, declared as NestJS declares it.

NestJS's RMQ server asserts its queue on start with its `queueOptions` (amqplib: durable
unless told otherwise, and the `arguments` given). RabbitMQ refuses a second declaration
with other arguments (PRECONDITION_FAILED), so this queue gets none of payrelay's own
work-queue arguments (dead-letter exchange, overflow, delivery limit): only the ones the
deployment configures, which must equal the NestJS service's `queueOptions.arguments`.
payrelay declares and binds it too, so that payment events published before the NestJS
service first starts wait in it instead of coming back unroutable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractChannel

from payrelay.adapters.transports.rabbitmq_topology import Topology

__all__ = ["ForeignQueue", "declare_foreign_queue"]


@dataclass(frozen=True, slots=True)
class ForeignQueue:
    """A durable queue another service consumes, bound to one of payrelay's exchanges."""

    queue: str
    """Without the broker name prefix, which is added as for every payrelay name."""
    exchange: str
    patterns: tuple[str, ...]
    arguments: Mapping[str, Any] = field(default_factory=dict)


async def declare_foreign_queue(
    channel: AbstractChannel, topology: Topology, queue: ForeignQueue
) -> None:
    """Declare the queue (durable, its own arguments) and bind it; idempotent."""
    declared = await channel.declare_queue(
        topology.name(queue.queue), durable=True, arguments=dict(queue.arguments)
    )
    for pattern in queue.patterns:
        await declared.bind(topology.name(queue.exchange), pattern)
