"""Run ASGI apps with uvicorn inside the current event loop, on loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator

import uvicorn
from starlette.types import ASGIApp

_STARTUP_TIMEOUT = 10.0


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """Bind before serving, so the port (0 picks a free one) is known before the app is built."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
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


class _EmbeddedUvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the host process owns its signals


@contextlib.asynccontextmanager
async def serve_in_process(app: ASGIApp, sock: socket.socket) -> AsyncIterator[str]:
    """Serve `app` on `sock` until the block exits; yields the base URL."""
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", log_config=None,
        backlog=2048,
    )
    server = _EmbeddedUvicorn(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(_STARTUP_TIMEOUT):
            while not server.started:
                if task.done():
                    await task  # raises what stopped it
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.005)
        yield base_url(sock)
    finally:
        server.should_exit = True
        await task
        sock.close()
