"""The naive order service, in a process of its own: a NestJS `ServerRMQ` with defaults.

Nest's RabbitMQ server, left at its defaults (nestjs/nest, packages/microservices/server/
server-rmq.ts and constants.ts), consumes its durable queue with `noAck: true` and
`prefetchCount: 0`: the broker pushes every message at once and forgets it on delivery, so
a message the process holds when it dies is gone. Each message runs its handler as soon as
it arrives (one task per message; the pool of 10 connections is what bounds them), and the
answer goes to the message's `reply_to` with its `correlation_id`.

The handler is the plain UPDATE the issue describes, with no inbox and no condition on the
status, so a second request for the same order updates it again. `version` starts at 1 and
goes up by one per UPDATE: an order at version 3 or more was updated twice.

    python -m benchmarks.naive.order_service SPEC.json
SPEC: {"rabbitmq_url", "queue", "orders_db_url" (asyncpg's form), "ready_file"}.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from benchmarks.naive.rpc import UPDATE_ORDER
from payrelay.domain.order import OrderStatus
from payrelay.entrypoints.event_loop import run

__all__ = ["PAY_ORDER", "OrderService"]

PAY_ORDER = ("UPDATE orders SET status = $2, paid_at = now(), version = version + 1"
             " WHERE order_id = $1")
POOL_SIZE = 10


@dataclass
class OrderService:
    """Answers each request on the channel it came in on, as Nest's server does."""

    pool: asyncpg.Pool
    channel: AbstractChannel

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        """Already acknowledged by the broker (no-ack): whatever happens here, it is gone."""
        packet = json.loads(message.body)
        try:
            response = await self.apply(packet.get("pattern"), packet.get("data") or {})
            answer: dict[str, Any] = {"err": None, "response": response, "isDisposed": True}
        except (asyncpg.PostgresError, OSError, LookupError) as exc:
            answer = {"err": f"{type(exc).__name__}: {exc}", "isDisposed": True}
        if message.reply_to:
            # Not mandatory: a caller that has gone (its timeout passed) just loses it.
            await self.channel.default_exchange.publish(
                aio_pika.Message(json.dumps(answer).encode(),
                                 correlation_id=message.correlation_id),
                routing_key=message.reply_to, mandatory=False)

    async def apply(self, pattern: str | None, data: dict[str, Any]) -> dict[str, Any]:
        if pattern != UPDATE_ORDER:
            raise LookupError(f"no handler for {pattern!r}")
        done = await self.pool.execute(PAY_ORDER, data["order_id"], OrderStatus.PAID.value)
        return {"order_id": data["order_id"], "updated": done.endswith(" 1")}


async def serve(spec: dict[str, Any]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await asyncpg.create_pool(spec["orders_db_url"], min_size=POOL_SIZE,
                                     max_size=POOL_SIZE)
    connection = await aio_pika.connect(spec["rabbitmq_url"])
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=0)  # Nest's RQM_DEFAULT_PREFETCH_COUNT
        queue = await channel.declare_queue(spec["queue"], durable=True)
        await queue.consume(OrderService(pool, channel).on_message, no_ack=True)
        Path(spec["ready_file"]).write_text(str(os.getpid()))
        await stop.wait()
    finally:
        await connection.close()
        await pool.close()


if __name__ == "__main__":
    run(serve(json.loads(Path(sys.argv[1]).read_text())))
