"""Serving the simulator: embedded in a running event loop (tests) or blocking (the CLI).

Both run on the simulator's own runner (`serving.py`), not on payrelay's listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import TracebackType
from typing import Self

import uvicorn

from payrelay.simulator.app import create_app
from payrelay.simulator.faults import SimulatorFaults
from payrelay.simulator.serving import EmbeddedServer, listening_socket
from payrelay.simulator.state import GatewaySimulator


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
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=_loop()) as run:
        run.run(_serve_forever(host, port, simulator))


def _loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (uvicorn picks httptools by itself the same way)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _serve_forever(host: str, port: int, simulator: GatewaySimulator) -> None:
    sock = listening_socket(host, port)
    config = uvicorn.Config(create_app(simulator), log_level="info", lifespan="off")
    async with simulator:
        # A plain uvicorn.Server: here it should own SIGINT/SIGTERM and stop on them.
        await uvicorn.Server(config).serve(sockets=[sock])
