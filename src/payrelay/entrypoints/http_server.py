"""Run ASGI apps with uvicorn inside the current event loop, on loopback sockets.

The server binds its socket before serving, so port 0 gives a free port whose number is
known before the app is built, and it leaves the process's signal handlers alone: several
embedded servers restoring each other's handlers would leave Ctrl+C pointing at a server
that has already stopped.

Every server gets payrelay's limits (`ServerLimits`): read deadlines, a connection cap and a
cap on requests in progress (http_protocol, http_guard), each refusal recorded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Self

import uvicorn
from starlette.types import ASGIApp

from payrelay.entrypoints.http_guard import RequestCap
from payrelay.entrypoints.http_protocol import UVICORN_LOG, GuardedH11, ReadLimits
from payrelay.entrypoints.rate_limit import KeyedBuckets
from payrelay.entrypoints.rejections import Rejections

if TYPE_CHECKING:
    from payrelay.config import Settings

_STARTUP_TIMEOUT = 10.0


@dataclass(frozen=True)
class ServerLimits:
    """What one listener allows a client; the defaults are the settings' (`PAYRELAY_HTTP_*`)."""

    header_timeout: float = 5.0
    body_timeout: float = 5.0
    keep_alive: int = 5
    max_header_bytes: int = 16 * 1024
    max_connections: int = 2000
    max_concurrent_requests: int = 1000
    forwarded_allow_ips: str = ""
    """Proxies whose X-Forwarded-For names the client; empty: the peer is the client."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerLimits:
        return cls(
            header_timeout=settings.http_header_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
            keep_alive=settings.http_keep_alive_seconds,
            max_header_bytes=settings.http_max_header_bytes,
            max_connections=settings.http_max_connections,
            max_concurrent_requests=settings.http_max_concurrent_requests,
            forwarded_allow_ips=settings.http_forwarded_allow_ips,
        )

    def uvicorn_config(
        self, app: ASGIApp, rejections: Rejections, budget: KeyedBuckets | None = None
    ) -> uvicorn.Config:
        # Behind a proxy the TCP peer is the proxy: holding its connections would hold
        # every client's, so only the app-level budget (by X-Forwarded-For) applies there.
        read = ReadLimits(
            self.header_timeout, self.body_timeout, self.max_connections,
            budget=None if self.forwarded_allow_ips else budget,
            max_header_bytes=self.max_header_bytes,
        )
        return uvicorn.Config(
            RequestCap(app, limit=self.max_concurrent_requests, rejections=rejections),
            http=guarded_protocol(read, rejections),
            ws="none",
            timeout_keep_alive=self.keep_alive,
            h11_max_incomplete_event_size=self.max_header_bytes,
            # uvicorn trusts 127.0.0.1 by default: a local client could then choose its own
            # address for the per-client limits. Trust only the proxies named.
            proxy_headers=bool(self.forwarded_allow_ips),
            forwarded_allow_ips=self.forwarded_allow_ips or None,
            log_level="warning", lifespan="off", access_log=False, log_config=None,
            backlog=2048,
        )


class _EmbeddedUvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the host process owns its signals


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket for uvicorn; port 0 picks a free one."""
    # IPPROTO_TCP must be explicit: asyncio sets TCP_NODELAY on accepted connections only
    # when the socket says it is TCP, and without it every response waits ~40 ms for
    # Nagle's algorithm to meet the client's delayed ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


class EmbeddedServer:
    """Any ASGI app served by uvicorn on the current loop: `async with EmbeddedServer(app)`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        sock: socket.socket | None = None,
        limits: ServerLimits | None = None,
        rejections: Rejections | None = None,
        budget: KeyedBuckets | None = None,
    ) -> None:
        self._app = app
        self._budget = budget
        self._limits = limits or ServerLimits()
        self.rejections = rejections or Rejections()
        self._sock = sock or bind_socket(host, port)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.base_url = base_url(self._sock)

    async def __aenter__(self) -> Self:
        config = self._limits.uvicorn_config(self._app, self.rejections, self._budget)
        self._server = server = _EmbeddedUvicorn(config)
        self._task = asyncio.create_task(server.serve(sockets=[self._sock]))
        try:
            async with asyncio.timeout(_STARTUP_TIMEOUT):
                while not server.started and not self._task.done():
                    await asyncio.sleep(0.005)
        finally:
            if not server.started:
                await self._shutdown()
                self._sock.close()
        if not server.started:
            raise RuntimeError("uvicorn did not start")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task  # uvicorn closes the listening socket on its way out
        self._server, self._task = None, None


def guarded_protocol(limits: ReadLimits, rejections: Rejections) -> type[asyncio.Protocol]:
    """The protocol class for `uvicorn.Config(http=...)`, bound to these limits: httptools
    where it is installed, h11 otherwise. Chosen here, above both parsers, so neither
    protocol module imports the other."""
    logging.getLogger(UVICORN_LOG).setLevel(logging.ERROR)
    base: type[asyncio.Protocol]
    try:
        from payrelay.entrypoints.http_httptools import GuardedHttpTools
    except ImportError:  # httptools is in requirements.lock; h11 always works
        base = GuardedH11
    else:
        base = GuardedHttpTools
    return type(base.__name__, (base,), {"limits": limits, "rejections": rejections})
