"""The gateway's side of the naive bench: webhooks at a fixed rate, retried until a 2xx.

MercadoPago sends a notification again when it does not get a 2xx in time, for hours, at
growing intervals. The bench compresses that schedule to `retry_after` seconds after each
failed answer (2, 5 and 10 s in the full bench: four deliveries at most, then it gives
up), which is enough to show what retries do to a handler that is not idempotent.

Like `benchmarks/loadgen.py`, whose pool, request signing and raw HTTP/1.1 it reuses, it
runs in a process of its own and is open loop: first deliveries are due at
`start + i / rate` whatever the answers, each latency counts from its due time, and the
first deliveries are signed before the clock starts (a retry is signed when it is due, with
a new request id, as a new delivery is).

    python -m benchmarks.naive.sender SPEC.json RESULT.json
SPEC: {"url", "secret", "payment_ids", "rate", "retry_after", "max_connections"}.
RESULT: {"started_at" (epoch s), "attempts": per webhook, [[due after started_at (s),
latency (s), status (0: no answer)], ...] in order}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.loadgen import Pool, send, signed_request

__all__ = ["Gateway"]


@dataclass(frozen=True)
class Gateway:
    """Delivers one payment's webhook until it is taken or the schedule runs out."""

    pool: Pool
    secret: str
    retry_after: Sequence[float]
    start: float  # perf_counter() of the first delivery's due time

    async def deliver(self, payment_id: str, request: bytes, due: float) -> list[list[float]]:
        attempts: list[list[float]] = []
        waits: list[float | None] = [*self.retry_after, None]
        for wait in waits:
            status = await send(self.pool, request)
            attempts.append([round(due - self.start, 4), time.perf_counter() - due, status])
            if 200 <= status < 300 or wait is None:
                break
            await asyncio.sleep(wait)
            due = time.perf_counter()
            request = signed_request(f"{self.pool.host}:{self.pool.port}", self.secret,
                                     payment_id)
        return attempts


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    url = urlsplit(spec["url"])
    host, port = url.hostname or "127.0.0.1", url.port or 80
    ids = [str(pid) for pid in spec["payment_ids"]]
    requests = [signed_request(f"{host}:{port}", spec["secret"], pid) for pid in ids]
    rate = float(spec["rate"])
    # Enough connections for every delivery a timing-out handler keeps waiting at once.
    pool = Pool(host, port, limit=int(spec.get("max_connections", 2048)))
    started_at, start = time.time(), time.perf_counter()
    gateway = Gateway(pool, spec["secret"], [float(s) for s in spec["retry_after"]], start)
    tasks = []
    try:
        for i, (pid, request) in enumerate(zip(ids, requests, strict=True)):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0.0005:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(gateway.deliver(pid, request, due)))
        attempts = await asyncio.gather(*tasks)
    finally:
        pool.close()
    return {"started_at": started_at, "attempts": attempts}


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    result = asyncio.run(run(spec))
    Path(sys.argv[2]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
