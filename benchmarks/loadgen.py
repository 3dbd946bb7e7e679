"""The load generator: signed webhooks at a fixed rate, in a process of its own.

Open loop: request i is due at `start + i / rate` whether or not earlier ones have been
answered, and its latency is counted from that due time, so a server that falls behind
shows it in the percentiles (no coordinated omission) instead of slowing the client down.
`rate = 0` is the closed-loop saturation mode: `concurrency` connections send back to
back, and latency is counted from each write.

Every request is signed before the clock starts, so HMAC costs the client nothing while it
measures, and each is written as raw HTTP/1.1 bytes over a pool of keep-alive connections:
httpx would spend more CPU per request than the server does on a 2-core machine.

    python -m benchmarks.loadgen SPEC.json RESULT.json

SPEC: {"url", "secret", "payment_ids", "rate", "concurrency", "max_connections"}.
RESULT: {"started_at" (epoch s), "sent_at" (epoch s, per request), "latency_s", "status"}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from payrelay.domain.signature import signature_header

PATH = "/webhooks/mercadopago"


def signed_request(host: str, secret: str, payment_id: str) -> bytes:
    """One webhook as MercadoPago sends it, as bytes ready for the socket."""
    request_id = str(uuid.uuid4())
    header = signature_header(secret, data_id=payment_id, request_id=request_id,
                              ts=int(time.time()))
    body = json.dumps({"type": "payment", "action": "payment.updated",
                       "data": {"id": payment_id}}).encode()
    head = (
        f"POST {PATH}?data.id={payment_id}&type=payment HTTP/1.1\r\n"
        f"host: {host}\r\nx-signature: {header}\r\nx-request-id: {request_id}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Pool:
    """Keep-alive connections to one server, at most `limit` open at once."""

    host: str
    port: int
    limit: int
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)
    opened: int = 0
    freed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def take(self, *, fresh: bool = False
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """An idle connection (the most recently used), or a new one if `fresh` or none."""
        async with self.freed:
            while not self.idle and self.opened >= self.limit:
                await self.freed.wait()
            if self.idle and not fresh:
                return self.idle.pop()
            if self.idle:  # fresh, at the limit: close the least recently used instead
                self.idle.pop(0)[1].close()
            else:
                self.opened += 1
        try:
            return await asyncio.open_connection(self.host, self.port)
        except OSError:
            await self.lost()
            raise

    async def give_back(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        async with self.freed:
            self.idle.append(conn)
            self.freed.notify()

    async def lost(self) -> None:
        async with self.freed:
            self.opened -= 1
            self.freed.notify()

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   request: bytes) -> tuple[int, bool]:
    """Send one request, read its answer: (status, keep the connection)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection") != "close"


async def send(pool: Pool, request: bytes) -> int:
    """Status of one request (0: no answer). A kept-alive connection the server closed
    while it sat idle (uvicorn's keep-alive timeout) is retried once, on a new connection."""
    for attempt in (1, 2):
        reader, writer = await pool.take(fresh=attempt == 2)
        try:
            status, keep = await exchange(reader, writer, request)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            writer.close()
            await pool.lost()
            if attempt == 2:
                return 0
            continue
        if keep:
            await pool.give_back((reader, writer))
        else:
            writer.close()
            await pool.lost()
        return status
    return 0


async def open_loop(pool: Pool, requests: list[bytes], rate: float) -> dict[str, Any]:
    latency = [0.0] * len(requests)
    status = [0] * len(requests)
    started_at, start = time.time(), time.perf_counter()

    async def one(i: int, due: float) -> None:
        status[i] = await send(pool, requests[i])
        latency[i] = time.perf_counter() - due

    tasks = []
    for i in range(len(requests)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    sent_at = [started_at + i / rate for i in range(len(requests))]
    return {"started_at": started_at, "sent_at": sent_at, "latency_s": latency,
            "status": status}


async def closed_loop(pool: Pool, requests: list[bytes], concurrency: int) -> dict[str, Any]:
    latency = [0.0] * len(requests)
    status = [0] * len(requests)
    sent_at = [0.0] * len(requests)
    started_at, queue = time.time(), iter(range(len(requests)))

    async def worker() -> None:
        for i in queue:
            sent_at[i], began = time.time(), time.perf_counter()
            status[i] = await send(pool, requests[i])
            latency[i] = time.perf_counter() - began

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"started_at": started_at, "sent_at": sent_at, "latency_s": latency,
            "status": status}


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    url = urlsplit(spec["url"])
    host, port = url.hostname or "127.0.0.1", url.port or 80
    requests = [signed_request(f"{host}:{port}", spec["secret"], str(pid))
                for pid in spec["payment_ids"]]
    rate = float(spec.get("rate", 0))
    concurrency = int(spec.get("concurrency", 32))
    pool = Pool(host, port, limit=int(spec.get("max_connections", 256)) if rate else concurrency)
    try:
        if rate > 0:
            return await open_loop(pool, requests, rate)
        return await closed_loop(pool, requests, concurrency)
    finally:
        pool.close()


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    result = asyncio.run(run(spec))
    Path(sys.argv[2]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
