"""The ingest ceiling: a bare ASGI endpoint that verifies the HMAC and inserts one row.

No FastAPI, no SQLAlchemy, no group commit, no limits: what a webhook costs at the least
on this machine, served by the same uvicorn and h11 as payrelay. One INSERT per request,
committed on its own (PostgreSQL through an asyncpg pool; SQLite through one aiosqlite
connection in WAL mode with synchronous=FULL, as payrelay opens its files).

    python -m benchmarks.raw_ingest DATABASE_URL PORT_FILE SECRET
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aiosqlite
import asyncpg
import uvicorn
from sqlalchemy.engine import make_url

from payrelay.domain.errors import NotificationRejected
from payrelay.domain.signature import verify_signature
from payrelay.entrypoints.http_server import bind_socket

Insert = Callable[[str, str], Awaitable[None]]
DDL = ("CREATE TABLE IF NOT EXISTS raw_notifications (dedupe_key TEXT PRIMARY KEY,"
       " payment_id TEXT NOT NULL)")
OK = b'{"status":"recorded"}'


async def postgres_insert(url: str) -> Insert:
    parsed = make_url(url)
    pool = await asyncpg.create_pool(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username,
        password=parsed.password, database=parsed.database, min_size=4, max_size=20,
    )
    await pool.execute(DDL)

    async def insert(key: str, payment_id: str) -> None:
        await pool.execute("INSERT INTO raw_notifications VALUES ($1, $2)"
                           " ON CONFLICT DO NOTHING", key, payment_id)

    return insert


async def sqlite_insert(url: str) -> Insert:
    conn = await aiosqlite.connect(make_url(url).database or ":memory:")
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=FULL")
    await conn.execute(DDL)
    await conn.commit()

    async def insert(key: str, payment_id: str) -> None:
        await conn.execute("INSERT OR IGNORE INTO raw_notifications VALUES (?, ?)",
                           (key, payment_id))
        await conn.commit()

    return insert


def make_app(insert: Insert, secret: str) -> Callable[..., Awaitable[None]]:
    async def app(scope: dict[str, Any], receive: Callable[..., Awaitable[dict[str, Any]]],
                  send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        more = True
        while more:  # the body is read, as a real handler must
            message = await receive()
            more = message.get("more_body", False)
        headers = dict(scope["headers"])
        data_id = parse_qs(scope["query_string"].decode()).get("data.id", [""])[0]
        request_id = headers.get(b"x-request-id", b"").decode()
        try:
            verify_signature(headers.get(b"x-signature", b"").decode(), data_id=data_id,
                             request_id=request_id, secrets=[secret])
            signed = True
        except NotificationRejected:
            signed = False
        status, body = (200, OK) if signed else (401, b'{"error":"bad signature"}')
        if signed:
            await insert(f"{data_id}:{request_id}", data_id)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


async def serve(url: str, port_file: Path, secret: str) -> None:
    insert = await (postgres_insert(url) if url.startswith("postgresql")
                    else sqlite_insert(url))
    sock = bind_socket()
    config = uvicorn.Config(make_app(insert, secret), http="h11", ws="none",
                            lifespan="off", log_level="warning", access_log=False,
                            log_config=None, backlog=2048)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    port_file.write_text(str(sock.getsockname()[1]))
    await task


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], Path(sys.argv[2]), sys.argv[3]))
