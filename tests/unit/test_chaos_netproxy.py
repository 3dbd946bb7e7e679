"""The chaos network proxy on its own, in front of an echo server on loopback: it forwards
bytes both ways, a stall holds them and then lets them through, a slow link delays them,
and a cut resets every open connection (and refuses new ones while it lasts)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from payrelay.chaos.netproxy import NetProxy, proxied_network


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[tuple[int, list[BaseException]]]:
    """A server on a free port that echoes what it reads; the errors its connections met."""
    errors: list[BaseException] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError as exc:
            errors.append(exc)
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1]), errors
    finally:
        server.close()


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[NetProxy, list[BaseException]]]:
    async with echo_server() as (port, errors):
        proxy = NetProxy(("127.0.0.1", port))
        await proxy.start()
        try:
            yield proxy, errors
        finally:
            await proxy.close()


async def connect(proxy: NetProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def test_it_forwards_bytes_both_ways_and_the_end_of_file(
    proxied: tuple[NetProxy, list[BaseException]],
) -> None:
    proxy, _ = proxied
    reader, writer = await connect(proxy)
    payload = bytes(range(256)) * 4096  # 1 MiB: many chunks
    writer.write(payload)
    writer.write_eof()
    assert await reader.readexactly(len(payload)) == payload
    assert await reader.read() == b""  # the server's end of file, passed on
    writer.close()
    assert proxy.accepted == 1 and proxy.port != 0


async def test_a_stall_holds_bytes_then_lets_them_through(
    proxied: tuple[NetProxy, list[BaseException]],
) -> None:
    proxy, _ = proxied
    reader, writer = await connect(proxy)
    stall = asyncio.create_task(proxy.stall(0.6))
    await asyncio.sleep(0)
    writer.write(b"held")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(4), 0.3)  # silent, and still open
    await stall
    assert await asyncio.wait_for(reader.readexactly(4), 2) == b"held"
    writer.close()


async def test_a_connection_opened_during_a_stall_waits_for_its_end(
    proxied: tuple[NetProxy, list[BaseException]],
) -> None:
    proxy, _ = proxied
    stall = asyncio.create_task(proxy.stall(0.5))
    await asyncio.sleep(0)
    reader, writer = await connect(proxy)
    writer.write(b"hello")
    await stall
    assert await asyncio.wait_for(reader.readexactly(5), 2) == b"hello"
    writer.close()


async def test_a_slow_link_delays_every_exchange(
    proxied: tuple[NetProxy, list[BaseException]],
) -> None:
    proxy, _ = proxied
    reader, writer = await connect(proxy)
    slow = asyncio.create_task(proxy.slow(5, latency=0.2))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    began = loop.time()
    writer.write(b"x")
    assert await reader.readexactly(1) == b"x"
    assert loop.time() - began >= 0.4  # once each way
    slow.cancel()
    await asyncio.gather(slow, return_exceptions=True)
    began = loop.time()
    writer.write(b"y")
    assert await reader.readexactly(1) == b"y"
    assert loop.time() - began < 0.2
    writer.close()


async def test_a_cut_resets_open_connections_and_refuses_new_ones_while_it_lasts(
    proxied: tuple[NetProxy, list[BaseException]],
) -> None:
    proxy, server_errors = proxied
    reader, writer = await connect(proxy)
    writer.write(b"ping")
    assert await reader.readexactly(4) == b"ping"
    cut = asyncio.create_task(proxy.cut(0.5))
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), 2)
    refused_reader, refused = await connect(proxy)  # the kernel accepts; the proxy resets
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(refused_reader.read(1), 2)
    assert await cut == 1
    await asyncio.sleep(0.1)
    assert any(isinstance(e, ConnectionResetError) for e in server_errors)  # both sides
    reader, writer = await connect(proxy)
    writer.write(b"again")
    assert await reader.readexactly(5) == b"again"
    assert proxy.resets == 2
    writer.close()
    refused.close()


async def test_a_stalled_connection_is_cut_too(
    proxied: tuple[NetProxy, list[BaseException]],
) -> None:
    proxy, _ = proxied
    reader, writer = await connect(proxy)
    writer.write(b"a")
    assert await reader.readexactly(1) == b"a"
    stall = asyncio.create_task(proxy.stall(5))
    await asyncio.sleep(0)
    writer.write(b"held")
    await asyncio.sleep(0.1)
    assert await proxy.cut(0) == 1
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), 2)
    stall.cancel()
    await asyncio.gather(stall, return_exceptions=True)


async def test_the_network_rewrites_only_urls_to_tcp_servers() -> None:
    async with echo_server() as (port, _):
        env = {
            "PAYRELAY_PAYMENTS_DATABASE_URL": f"postgresql+asyncpg://pg:pw@127.0.0.1:{port}/a",
            "PAYRELAY_ORDERS_DATABASE_URL": f"postgresql+asyncpg://pg:pw@127.0.0.1:{port}/b",
            "PAYRELAY_BROKER_URL": "local",
            "PAYRELAY_GATEWAY_BASE_URL": f"http://127.0.0.1:{port}",
            "OTHER": "kept",
        }
        async with proxied_network(env) as network:
            out = network.env(env)
            [pg] = network.proxies("postgres")
            [gw] = network.proxies("gateway")
            assert network.proxies("rabbitmq") == []
            assert out["PAYRELAY_PAYMENTS_DATABASE_URL"] == \
                f"postgresql+asyncpg://pg:pw@127.0.0.1:{pg.port}/a"
            assert out["PAYRELAY_ORDERS_DATABASE_URL"].endswith(f"@127.0.0.1:{pg.port}/b")
            assert out["PAYRELAY_GATEWAY_BASE_URL"] == f"http://127.0.0.1:{gw.port}"
            assert out["PAYRELAY_BROKER_URL"] == "local" and out["OTHER"] == "kept"
            reader, writer = await asyncio.open_connection("127.0.0.1", pg.port)
            writer.write(b"via")
            assert await reader.readexactly(3) == b"via"
            writer.close()


