"""uvicorn on the running event loop, on a socket bound before it starts.

The simulator's own runner, so that it depends on nothing of payrelay's entrypoints: it
plays the outside world, and payrelay's listener limits are not the outside world's. Port
0 gives a free port whose number is known before serving, and the server leaves the
process's signal handlers alone (the test or the host process owns them).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp

_STARTUP_SECONDS = 10.0


def listening_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A bound TCP socket for uvicorn to listen on; port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Naming IPPROTO_TCP lets asyncio set TCP_NODELAY on accepted connections; without it
    # small answers wait for Nagle's algorithm (~40 ms each).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _embedded_config(app: ASGIApp) -> uvicorn.Config:
    """HTTP only, no lifespan, and the host process's logging left as it is."""
    return uvicorn.Config(
        app, ws="none", lifespan="off", log_level="warning",
        access_log=False, log_config=None, proxy_headers=False, backlog=2048,
    )


class _QuietSignals(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the host process owns SIGINT and SIGTERM


class EmbeddedServer:
    """Any ASGI app served on the current loop: `async with EmbeddedServer(app) as s`."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = app
        self._sock = listening_socket(host, port)
        bound_host, bound_port = self._sock.getsockname()[:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._server = server = _QuietSignals(_embedded_config(self._app))
        self._task = task = asyncio.create_task(server.serve(sockets=[self._sock]))
        try:
            async with asyncio.timeout(_STARTUP_SECONDS):
                while not server.started and not task.done():
                    await asyncio.sleep(0.005)
        finally:
            if not server.started:
                await self._stop()
                self._sock.close()
        if not server.started:
            raise RuntimeError("uvicorn did not start")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task  # uvicorn closes the listening socket on its way out
        self._server, self._task = None, None
