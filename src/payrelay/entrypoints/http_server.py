"""Run ASGI apps with uvicorn inside the current event loop, on loopback sockets.

The server binds its socket before serving, so port 0 gives a free port whose number is
known before the app is built, and it leaves the process's signal handlers alone: several
embedded servers restoring each other's handlers would leave Ctrl+C pointing at a server
that has already stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp

_STARTUP_TIMEOUT = 10.0


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
    ) -> None:
        self._app = app
        self._sock = sock or bind_socket(host, port)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.base_url = base_url(self._sock)

    async def __aenter__(self) -> Self:
        config = uvicorn.Config(
            self._app, log_level="warning", lifespan="off", access_log=False, log_config=None,
            backlog=2048,
        )
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
