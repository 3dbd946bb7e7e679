"""Ceilings: what this machine does at best, measured in the same run as payrelay.

- `raw_ingest`: the bare ASGI endpoint of raw_ingest.py (HMAC + one INSERT), saturated by
  the load generator, per database.
- `postgres_transactions`: consumer-shaped transactions per second, straight on asyncpg:
  lock one order row, INSERT an inbox row, UPDATE the order, INSERT an outbox row, COMMIT.
- `rabbitmq_confirmed`: messages per second through one quorum queue, published
  persistent with publisher confirms (a window in flight) and consumed with manual acks.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
from sqlalchemy.engine import make_url

from benchmarks.harness import (
    SECRET,
    children,
    http_summary,
    load,
    wait_port_file,
)

CONSUMER_SCHEMA = """
CREATE TABLE orders (order_id TEXT PRIMARY KEY, status TEXT NOT NULL, version INT NOT NULL,
                     paid_by TEXT, paid_at TIMESTAMPTZ);
CREATE TABLE inbox (message_id TEXT PRIMARY KEY, received_at TIMESTAMPTZ NOT NULL);
CREATE TABLE outbox (id BIGSERIAL PRIMARY KEY, message_id TEXT NOT NULL, body TEXT NOT NULL,
                     status TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL);
"""


async def raw_ingest(database_url: str, log_dir: Path, *, count: int, concurrency: int,
                     rates: list[float], step_seconds: float) -> dict[str, Any]:
    """The bare endpoint saturated (closed loop), then at each offered rate (open loop)."""
    port_file = log_dir / f"raw-{uuid.uuid4().hex[:6]}.port"
    async with children({}, log_dir) as procs:
        procs.start("raw-ingest", [sys.executable, "-m", "benchmarks.raw_ingest", database_url,
                                   str(port_file), SECRET])
        url = f"http://127.0.0.1:{await wait_port_file(port_file, procs)}"
        ids = (str(10**12 + i) for i in range(10**9))
        await load(url, [next(ids) for _ in range(200)], rate=0, concurrency=concurrency)
        saturated = http_summary(
            await load(url, [next(ids) for _ in range(count)], rate=0, concurrency=concurrency))
        at_rates = {}
        for rate in rates:
            batch = [next(ids) for _ in range(int(rate * step_seconds))]
            at_rates[str(int(rate))] = http_summary(await load(url, batch, rate=rate))
    return {"saturation": saturated, "at_rate": at_rates}


async def _connect(url: str) -> asyncpg.Connection:
    parsed = make_url(url)
    return await asyncpg.connect(host=parsed.host, port=parsed.port or 5432,
                                 user=parsed.username, password=parsed.password,
                                 database=parsed.database)


async def postgres_transactions(database_url: str, *, seconds: float, connections: int = 8,
                                rows: int = 20_000) -> dict[str, Any]:
    """Consumer-shaped transactions per second on `database_url` (an empty database)."""
    setup = await _connect(database_url)
    try:
        await setup.execute(CONSUMER_SCHEMA)
        await setup.copy_records_to_table(
            "orders", records=[(f"o-{i}", "pending_payment", 1, None, None) for i in range(rows)],
            columns=["order_id", "status", "version", "paid_by", "paid_at"])
    finally:
        await setup.close()
    done = 0
    until = time.monotonic() + seconds

    async def worker(seed: int) -> None:
        nonlocal done
        pick = random.Random(seed)
        conn = await _connect(database_url)
        try:
            while time.monotonic() < until:
                order_id, message_id = f"o-{pick.randrange(rows)}", str(uuid.uuid4())
                async with conn.transaction():
                    await conn.fetchrow("SELECT status, version FROM orders WHERE order_id=$1"
                                        " FOR UPDATE", order_id)
                    await conn.execute("INSERT INTO inbox VALUES ($1, now())", message_id)
                    await conn.execute("UPDATE orders SET status='paid', version=version+1,"
                                       " paid_by=$2, paid_at=now() WHERE order_id=$1",
                                       order_id, message_id)
                    await conn.execute("INSERT INTO outbox (message_id, body, status,"
                                       " created_at) VALUES ($1, $2, 'pending', now())",
                                       message_id, '{"type":"order.payment_applied"}')
                done += 1
        finally:
            await conn.close()

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    elapsed = time.monotonic() - started
    return {"transactions_per_s": round(done / elapsed, 1), "connections": connections,
            "statements": 4, "seconds": round(elapsed, 2)}


async def rabbitmq_confirmed(broker_url: str, prefix: str, *, seconds: float,
                             window: int = 200) -> dict[str, Any]:
    """Messages per second published (confirmed) and consumed (acked) on a quorum queue."""
    connection = await aio_pika.connect(broker_url)
    name = f"{prefix}bench-ceiling"
    try:
        publish = await connection.channel(publisher_confirms=True)
        consume = await connection.channel()
        await consume.set_qos(prefetch_count=window)
        queue = await consume.declare_queue(name, durable=True,
                                            arguments={"x-queue-type": "quorum"})
        consumed = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal consumed
            await message.ack()
            consumed += 1

        tag = await queue.consume(on_message)
        started = time.monotonic()
        published = await _publish_for(publish, name, seconds=seconds, window=window)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                while consumed < published:
                    await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()
    return {"messages_per_s": round(consumed / elapsed, 1), "published": published,
            "consumed": consumed, "confirm_window": window, "seconds": round(elapsed, 2)}


async def _publish_for(channel: aio_pika.abc.AbstractChannel, queue: str, *, seconds: float,
                       window: int) -> int:
    """Publish persistent messages, `window` awaiting confirms at a time; how many."""
    body = b'{"type":"payment.approved","payment_id":"1000000001"}' * 4
    until, published = time.monotonic() + seconds, 0
    while time.monotonic() < until:
        await asyncio.gather(*(
            channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                 message_id=str(uuid.uuid4())),
                routing_key=queue)
            for _ in range(window)))
        published += window
    return published
