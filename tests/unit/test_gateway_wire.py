"""The production wire (aiohttp) against a loopback server that misbehaves on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from payrelay.adapters.gateways.mercadopago import MercadoPagoGateway
from payrelay.adapters.gateways.wire import AiohttpWire
from payrelay.domain.errors import GatewayRejected, GatewayUnavailable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
PAYMENT = (
    b'{"id":7,"status":"approved","status_detail":"accredited","currency_id":"BRL",'
    b'"transaction_amount":10.10,"external_reference":"order-1",'
    b'"date_created":"2026-11-23T14:00:00.000-03:00",'
    b'"date_last_updated":"2026-11-23T14:00:00.000-03:00"}'
)


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()


def answering(status: str, body: bytes, seen: list[bytes], extra: bytes = b"") -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n".encode() + extra
            + b"\r\n" + body
        )
        await writer.drain()
        writer.close()
    return handle


async def test_a_payment_arrives_exact_with_the_path_as_quoted() -> None:
    seen: list[bytes] = []
    async with serving(answering("200 OK", PAYMENT, seen)) as url:
        wire = AiohttpWire(url + "/", timeout=2)
        sent: list[tuple[str, str]] = []
        wire.watchers.append(lambda method, path: sent.append((method, path)))
        try:
            snapshot = await MercadoPagoGateway(wire, access_token="t").fetch_payment("7/../x")
        finally:
            await wire.aclose()
    assert sent == [("GET", "/v1/payments/7%2F..%2Fx")]
    assert str(snapshot.amount.amount) == "10.10"
    head = seen[0].decode()
    assert head.startswith("GET /v1/payments/7%2F..%2Fx HTTP/1.1\r\n")
    assert "Authorization: Bearer t\r\n" in head


async def test_a_redirect_is_not_followed() -> None:
    seen: list[bytes] = []
    moved = answering("302 Found", b"", seen, b"Location: http://127.0.0.1:1/elsewhere\r\n")
    async with serving(moved) as url:
        wire = AiohttpWire(url, timeout=2)
        try:
            status, _ = await wire.request("GET", "/v1/payments/1", headers={})
        finally:
            await wire.aclose()
    assert status == 302 and len(seen) == 1


async def test_a_404_is_rejected_and_a_503_unavailable() -> None:
    for status, error in (("404 Not Found", GatewayRejected), ("503 Busy", GatewayUnavailable)):
        async with serving(answering(status, b"{}", [])) as url:
            wire = AiohttpWire(url, timeout=2)
            try:
                with pytest.raises(error):
                    await MercadoPagoGateway(wire, access_token="t").fetch_payment("1")
            finally:
                await wire.aclose()


async def test_silence_times_out() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        await asyncio.sleep(2)
        writer.close()

    async with serving(hang) as url:
        wire = AiohttpWire(url, timeout=0.2)
        try:
            with pytest.raises(GatewayUnavailable, match="GET /v1/payments/1: timed out"):
                await wire.request("GET", "/v1/payments/1", headers={})
        finally:
            await wire.aclose()


async def test_a_hang_up_and_a_refused_connection_are_unavailable() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with serving(hang_up) as url:
        wire = AiohttpWire(url, timeout=2)
        try:
            # Reset or disconnected, depending on when the close lands: no answer either way.
            with pytest.raises(GatewayUnavailable, match=r"GET /v1/payments/1: (Client|Server)"):
                await wire.request("GET", "/v1/payments/1", headers={})
        finally:
            await wire.aclose()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        wire = AiohttpWire(f"http://127.0.0.1:{port}", timeout=2)
        try:
            with pytest.raises(GatewayUnavailable, match="ClientConnectorError"):
                await wire.request("GET", "/v1/payments/1", headers={})
        finally:
            await wire.aclose()
