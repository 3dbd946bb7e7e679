"""A TCP proxy between payrelay's processes and a server, which a fault makes behave like a
bad network: silent for a while (stall), slow (latency per chunk), or cut (every open
connection reset, new ones refused for a while).

This machine's kernel has no netem and toxiproxy is not installable, so the network is
simulated here, in the harness's own event loop. Only payrelay's processes are given the
proxies' addresses (`Network.env`); the harness reaches the servers directly, so a network
fault never blinds the judge or the injectors.

A stall holds bytes, it does not drop them: TCP never loses bytes on a live connection, so
what a silent network does to a peer is delay everything, until a timeout of its own (the
LISTEN probe, a publish confirm, a heartbeat) gives up on the connection. A cut is the
other end of that: an RST (SO_LINGER 0, then close), as a middlebox or a rebooted host
sends, so both sides learn at once that the connection is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "LINK_SETTINGS", "SERVER_LINKS", "NetProxy", "Network", "proxied_network", "start_network",
]

CHUNK = 64 * 1024

LINK_SETTINGS: dict[str, tuple[str, ...]] = {
    "postgres": ("PAYRELAY_PAYMENTS_DATABASE_URL", "PAYRELAY_ORDERS_DATABASE_URL"),
    "rabbitmq": ("PAYRELAY_BROKER_URL",),
    "gateway": ("PAYRELAY_GATEWAY_BASE_URL",),
}
"""Each link a network fault may hit, and the settings whose URLs go through its proxy."""
SERVER_LINKS = ("postgres", "rabbitmq")
"""The links a chaos run proxies. Not the gateway's: only checkout and the processor's
fetches cross it, so a stall there longer than a run's order expiry turns customers
away at checkout (their orders expire meanwhile), which says nothing about payrelay; the
`gateway` fault kind covers its 5xx and slow answers. `start_network(env)` proxies it too."""


def reset(transport: asyncio.WriteTransport) -> None:
    """Close with an RST, not a FIN: with SO_LINGER 0, close drops what is unsent. A
    transport already closed is left be (uvloop's has no socket left to set it on)."""
    if transport.is_closing():
        transport.abort()
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, ValueError):  # ValueError: uvloop, fd already gone
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@dataclass(eq=False)
class _Connection:
    """One proxied connection: the client's side, the server's, and the task pumping both."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    task: asyncio.Task[None]

    def reset(self) -> None:
        reset(self.client.transport)
        reset(self.server.transport)
        self.task.cancel()


@dataclass(eq=False)
class NetProxy:
    """Listens on a free loopback port and forwards every connection to `upstream`.

    Fault windows may overlap: a stall lasts until the last overlapping stall ends, the
    latency is the largest of the slow windows open, and new connections are refused
    until the last cut window ends.
    """

    upstream: tuple[str, int]
    port: int = 0
    accepted: int = 0
    resets: int = 0
    """Connections reset by a cut (open ones and refused new ones)."""
    _flowing: asyncio.Event = field(default_factory=asyncio.Event)
    _stalls: int = 0
    _delays: list[float] = field(default_factory=list)
    _refusals: int = 0
    _open: set[_Connection] = field(default_factory=set)
    _server: asyncio.Server | None = None
    _closed: bool = False
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._flowing.set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and reset whatever is still open."""
        self._closed = True
        if self._server is not None:
            self._server.close()
        self._flowing.set()
        await self._cut_open()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def stall(self, seconds: float) -> None:
        """Forward nothing, either way, for `seconds`; connections stay open, bytes wait."""
        self._stalls += 1
        self._flowing.clear()
        try:
            await asyncio.sleep(seconds)
        finally:
            self._stalls -= 1
            if not self._stalls:
                self._flowing.set()

    async def slow(self, seconds: float, latency: float) -> None:
        """Hold every chunk `latency` seconds before forwarding it, for `seconds`."""
        self._delays.append(latency)
        try:
            await asyncio.sleep(seconds)
        finally:
            self._delays.remove(latency)

    async def cut(self, seconds: float) -> int:
        """Reset every open connection, and any new one for `seconds`; how many were open."""
        self._refusals += 1
        try:
            was_open = await self._cut_open()
            await asyncio.sleep(seconds)
        finally:
            self._refusals -= 1
        return was_open

    async def _cut_open(self) -> int:
        cut = list(self._open)
        for conn in cut:
            conn.reset()
        # Waited for, so that `close` leaves no task behind.
        await asyncio.gather(*(c.task for c in cut), return_exceptions=True)
        self.resets += len(cut)
        return len(cut)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client connection: refused while a cut lasts, else paired with the server.

        The pumps run in a task of their own, which a cut cancels: this handler then ends
        normally, as asyncio's server expects of it (a cancelled handler is logged).
        """
        self.accepted += 1
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        handler.add_done_callback(self._handlers.discard)
        # A silent network does not pass the handshake on either: the client waits.
        await self._flowing.wait()
        if self._refusals or self._closed:
            self.resets += 1
            reset(writer.transport)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:  # the server is down: the client hears what it would have heard
            reset(writer.transport)
            return
        conn = _Connection(writer, up_writer, asyncio.create_task(
            self._pump_both(writer, up_writer, reader, up_reader)))
        self._open.add(conn)
        try:
            await asyncio.wait([conn.task])
        finally:
            self._open.discard(conn)
        if not conn.task.cancelled() and (exc := conn.task.exception()) is not None:
            raise exc

    async def _pump_both(
        self, writer: asyncio.StreamWriter, up_writer: asyncio.StreamWriter,
        reader: asyncio.StreamReader, up_reader: asyncio.StreamReader,
    ) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pump(reader, up_writer))
                tg.create_task(self._pump(up_reader, writer))
        except* OSError:  # one side was reset (or failed): the other side learns it the same way
            reset(writer.transport)
            reset(up_writer.transport)
        else:
            writer.close()
            up_writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Bytes from `reader` to `writer`, then its end of file, as the faults allow."""
        while data := await reader.read(CHUNK):
            await self._pass()
            if writer.is_closing():  # its peer left meanwhile; uvloop would raise RuntimeError
                raise ConnectionResetError("the other side of the connection is gone")
            writer.write(data)
            await writer.drain()  # backpressure: a stalled peer stalls this side's reads
        await self._flowing.wait()
        if writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()

    async def _pass(self) -> None:
        """Wait until a chunk read may go on: after any stall, and after the latency.

        Bytes that arrive meanwhile join the next read, so a slow link delays each byte by
        one to two latencies without cutting the throughput to one chunk per latency.
        """
        await self._flowing.wait()
        if self._delays:
            await asyncio.sleep(max(self._delays))
            await self._flowing.wait()  # a stall that began during the latency holds it too


@dataclass
class Network:
    """The proxies of a run, by link; only links whose servers speak TCP have one."""

    links: dict[str, list[NetProxy]]
    rewritten: dict[str, str]
    """The settings whose URLs now point at a proxy, with their new values."""

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        """`env` with every proxied URL replaced by the proxy's."""
        return {**env, **self.rewritten}

    def proxies(self, link: str) -> list[NetProxy]:
        return self.links.get(link, [])

    async def close(self) -> None:
        for proxies in self.links.values():
            for proxy in proxies:
                await proxy.close()


def _address(url: str) -> tuple[str, int] | None:
    """(host, port) of a URL to a TCP server; None for a file or "local"."""
    parts = urlsplit(url)
    if not parts.hostname or parts.port is None:
        return None
    return parts.hostname, parts.port


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def start_network(env: Mapping[str, str], links: Iterable[str] = LINK_SETTINGS) -> Network:
    """A started proxy in front of each server the settings of `links` name (one per
    server and link, shared by the settings that name it)."""
    by_address: dict[tuple[str, tuple[str, int]], NetProxy] = {}
    network = Network({}, {})
    try:
        for link in links:
            for setting in LINK_SETTINGS[link]:
                address = _address(env.get(setting, ""))
                if address is None:
                    continue
                if (link, address) not in by_address:
                    by_address[link, address] = proxy = NetProxy(address)
                    network.links.setdefault(link, []).append(proxy)
                    await proxy.start()
                network.rewritten[setting] = _through(env[setting], by_address[link, address].port)
    except BaseException:
        await network.close()
        raise
    return network


@contextlib.asynccontextmanager
async def proxied_network(
    env: Mapping[str, str], links: Iterable[str] = LINK_SETTINGS
) -> AsyncIterator[Network]:
    """`start_network`, closed afterwards."""
    network = await start_network(env, links)
    try:
        yield network
    finally:
        await network.close()
