"""Server limits over real sockets: read deadlines, connection and request caps, the
per-client budget of rejected webhooks, and the rate-limited rejection log."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from payrelay.entrypoints.http_server import EmbeddedServer, ServerLimits
from payrelay.entrypoints.rejections import Rejections
from tests.integration.test_webhooks import notifications_count, post, signed
from tests.support import StackFactory, adapters_of

ATTACKER = "127.0.0.2"  # all of 127.0.0.0/8 is loopback: a second client, not a spoofed one


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


async def seconds_until_closed(
    url: str, *chunks: bytes, gap: float = 0.0, limit: float = 5.0
) -> float:
    """Open a raw connection, send `chunks` `gap` seconds apart, and time until the server
    closes it (whatever it answered first)."""
    reader, writer = await asyncio.open_connection(*address(url))
    started = time.monotonic()
    try:
        for chunk in chunks:
            try:
                writer.write(chunk)
                await writer.drain()
            except ConnectionResetError:
                return time.monotonic() - started  # closed while we were still sending
            await asyncio.sleep(gap)
        async with asyncio.timeout(limit):
            while await reader.read(1024):
                pass
        return time.monotonic() - started
    finally:
        writer.close()


def attacker_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=10, transport=httpx.AsyncHTTPTransport(local_address=ATTACKER)
    )


@pytest.mark.parametrize(
    ("chunks", "gap", "why"),
    [
        ((), 0.0, "a connection that sends nothing"),
        ((b"POST /webhooks/merc",), 0.0, "half a request line"),
        (tuple(bytes([b]) for b in b"POST /webhooks/mercadopago HTTP/1.1\r\nhost: x\r\n"),
         0.05, "one byte every 50 ms, which an idle timer would never end"),
    ],
)
async def test_a_slow_header_connection_is_closed_at_the_header_deadline(
    make_stack: StackFactory, chunks: tuple[bytes, ...], gap: float, why: str
):
    async with make_stack(start_workers=False, http_header_timeout_seconds=0.5) as stack:
        elapsed = await seconds_until_closed(stack.payments_url, *chunks, gap=gap)
        assert 0.4 <= elapsed <= 1.5, why
        assert stack.rejections.counts["header timeout"] == 1


async def test_a_slow_body_connection_is_closed_at_the_body_deadline(
    make_stack: StackFactory, caplog: pytest.LogCaptureFixture
):
    parts = signed("1000000999")
    head = (
        "POST /webhooks/mercadopago?data.id=1000000999&type=payment HTTP/1.1\r\n"
        "host: x\r\ncontent-type: application/json\r\ncontent-length: 500\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in parts["headers"].items())  # type: ignore[attr-defined]
        + "\r\n"
    ).encode()
    async with make_stack(start_workers=False, http_header_timeout_seconds=5,
                          http_body_timeout_seconds=0.5) as stack:
        elapsed = await seconds_until_closed(stack.payments_url, head, b'{"id": 1,', gap=0.01)
        assert 0.4 <= elapsed <= 1.5
        assert stack.rejections.counts == {"body timeout": 1}
        assert await notifications_count(adapters_of(stack).payments_db) == 0
    # The route waiting for the body gives up quietly: no traceback for a client that left.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_request_over_the_header_size_limit_is_400(make_stack: StackFactory):
    async with make_stack(start_workers=False, http_max_header_bytes=1024) as stack:
        reader, writer = await asyncio.open_connection(*address(stack.payments_url))
        # h11 bounds what it buffers while headers are incomplete: 4 KB and still no end.
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-pad: " + b"a" * 4096)
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 400")
        assert stack.rejections.counts == {"invalid HTTP": 1}


async def test_many_small_headers_over_the_size_limit_are_400(make_stack: StackFactory):
    # h11 bounds only headers still incomplete; the httptools protocol bounds both.
    pytest.importorskip("httptools")
    async with make_stack(start_workers=False, http_max_header_bytes=1024) as stack:
        reader, writer = await asyncio.open_connection(*address(stack.payments_url))
        # Complete, and in one read: llhttp parses it all in one go.
        pads = b"".join(b"x-pad-%d: %s\r\n" % (n, b"a" * 40) for n in range(60))
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + pads + b"\r\n")
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 400")
        assert stack.rejections.counts == {"invalid HTTP": 1}


def test_the_listeners_parse_with_httptools_where_it_is_installed() -> None:
    pytest.importorskip("httptools")
    config = ServerLimits().uvicorn_config(Held(), Rejections())
    assert isinstance(config.http, type) and config.http.__name__ == "GuardedHttpTools"


class Held:
    """An ASGI app whose requests wait until released: requests in progress, on demand."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        self.started += 1
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def held_server() -> AsyncIterator[tuple[Held, EmbeddedServer]]:
    app = Held()
    limits = ServerLimits(max_concurrent_requests=2, max_connections=4)
    async with EmbeddedServer(app, limits=limits) as server:
        yield app, server
        app.release.set()


async def test_beyond_the_request_cap_the_answer_is_503_at_once(held_server, http):
    app, server = held_server
    held = [asyncio.create_task(http.get(f"{server.base_url}/x")) for _ in range(2)]
    while app.started < 2:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    refused = await http.get(f"{server.base_url}/x")
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert time.monotonic() - started < 1
    app.release.set()
    assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
    assert (await http.get(f"{server.base_url}/x")).status_code == 200
    assert server.rejections.counts == {"over capacity": 1}


async def test_beyond_the_connection_cap_a_new_connection_is_closed(held_server):
    _, server = held_server
    idle = [await asyncio.open_connection(*address(server.base_url)) for _ in range(4)]
    try:
        assert await seconds_until_closed(server.base_url, limit=1) < 0.5
        assert server.rejections.counts == {"too many connections": 1}
    finally:
        for _, writer in idle:
            writer.close()


async def test_a_client_flooding_rejected_webhooks_gets_429_while_others_are_recorded(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack(start_workers=False, webhook_rejection_burst=5,
                          webhook_rejections_per_second=0.1) as stack, \
            attacker_client() as attacker:
        bad = signed("1000000999", secret="not-the-secret")
        flood = [(await post(attacker, stack.payments_url, bad)).status_code
                 for _ in range(6)]
        assert flood == [401] * 5 + [429]
        # Past its budget the attacker's next connection is held unread, then closed: no
        # work at all is done for it, even for a good signature.
        held = asyncio.create_task(post(attacker, stack.payments_url, signed("1000000777")))
        started = time.monotonic()
        good = await asyncio.gather(
            *(post(http, stack.payments_url, signed(str(1000001000 + i))) for i in range(20))
        )
        assert [r.status_code for r in good] == [200] * 20
        with pytest.raises(httpx.TransportError):
            await held
        assert time.monotonic() - started >= 0.9
        assert await notifications_count(adapters_of(stack).payments_db) == 20
        assert stack.rejections.counts == {"invalid signature": 5, "rate limited": 2}


async def test_rejections_are_logged_with_reason_and_address_at_a_bounded_rate(
    make_stack: StackFactory, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, logger="payrelay.intake")
    async with make_stack(start_workers=False, webhook_rejection_burst=1000,
                          rejection_log_per_second=0.01) as stack, \
            attacker_client() as attacker:
        bad = signed("1000000999", secret="not-the-secret")
        answers = [(await post(attacker, stack.payments_url, bad)).status_code
                   for _ in range(60)]
        assert answers == [401] * 60
        assert stack.rejections.counts == {"invalid signature": 60}
    lines = [r.getMessage() for r in caplog.records if r.name == "payrelay.intake"]
    assert 1 <= len(lines) <= 21  # a burst of 20, then 0.01 lines a second
    for line in lines:
        assert ATTACKER in line and "invalid signature" in line and "HTTP 401" in line
    assert "not-the-secret" not in caplog.text
