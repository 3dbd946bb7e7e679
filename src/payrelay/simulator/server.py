"""Serving the simulator: embedded in a running event loop (tests) or blocking (the CLI).

The embedded server binds its own socket, so port 0 gives a free port whose number is
known before the first request, and it leaves the process's signal handlers alone: two
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

from payrelay.simulator.app import create_app
from payrelay.simulator.faults import SimulatorFaults
from payrelay.simulator.state import GatewaySimulator

_STARTUP_TIMEOUT = 5.0


class _EmbeddedUvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the host process owns its signals


def bind_socket(host: str, port: int) -> socket.socket:
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


class EmbeddedServer:
    """Any ASGI app served by uvicorn on the current loop: `async with EmbeddedServer(app) as s`."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app, self._host, self._port = app, host, port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.base_url = ""

    async def __aenter__(self) -> Self:
        sock = bind_socket(self._host, self._port)
        config = uvicorn.Config(
            self._app, log_level="warning", lifespan="off", access_log=False, log_config=None
        )
        self._server = server = _EmbeddedUvicorn(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            async with asyncio.timeout(_STARTUP_TIMEOUT):
                while not server.started:
                    if self._task.done():
                        break
                    await asyncio.sleep(0.005)
        finally:
            if not server.started:
                await self._shutdown()
                sock.close()
        if not server.started:
            raise RuntimeError("uvicorn did not start")
        host, port = sock.getsockname()[:2]
        self.base_url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task  # uvicorn closes the listening socket on its way out
        self._server, self._task = None, None


class SimulatorServer:
    """The simulator on a free local port, its notifier running: for integration tests."""

    def __init__(
        self, simulator: GatewaySimulator, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.simulator = simulator
        self._http = EmbeddedServer(create_app(self.simulator), host=host, port=port)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    async def __aenter__(self) -> Self:
        await self.simulator.start()
        try:
            await self._http.__aenter__()
        except BaseException:
            await self.simulator.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._http.__aexit__(exc_type, exc, tb)
        finally:
            await self.simulator.stop()


def run_simulator(
    host: str,
    port: int,
    *,
    access_token: str,
    webhook_secret: str,
    faults: SimulatorFaults | None = None,
    approve_delay: float = 0.2,
) -> None:
    """Serve the simulator until SIGINT/SIGTERM; what `payrelay simulator --port N` runs."""
    # uvicorn re-raises the signal once it has shut down; Ctrl+C is the normal way out here.
    simulator = GatewaySimulator(
        access_token=access_token,
        webhook_secret=webhook_secret,
        faults=faults,
        approve_delay=approve_delay,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(host, port, simulator))


async def _serve_forever(host: str, port: int, simulator: GatewaySimulator) -> None:
    sock = bind_socket(host, port)
    config = uvicorn.Config(create_app(simulator), log_level="info", lifespan="off")
    async with simulator:
        # A plain uvicorn.Server: here it should own SIGINT/SIGTERM and stop on them.
        await uvicorn.Server(config).serve(sockets=[sock])
