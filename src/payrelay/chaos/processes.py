"""One OS process the harness owns: started, killed with SIGKILL, started again, stopped."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PAYRELAY = (sys.executable, "-m", "payrelay")


# Below Linux's ephemeral range (32768-60999): a port picked here is never handed out again
# by the kernel to a bind(0) or an outgoing connection before the child binds it, which a
# port from bind(0) was (a bench's serve process once failed with EADDRINUSE).
_PICKED_PORTS = range(20000, 32768)
_rng = random.Random()


def free_port() -> int:
    """A loopback port nothing listens on now (the child binds it a moment later)."""
    for _ in range(100):
        port = _rng.choice(_PICKED_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OwnedProcess:
    """A child process, logging to its own file (appended to across restarts)."""

    name: str
    args: tuple[str, ...]
    log_path: Path
    env: dict[str, str]
    starts: int = 0
    started_at: float = 0.0
    """When it was last started (the event loop's clock)."""
    exits: list[int] = field(default_factory=list)
    """Exit codes of every time it ended, killed or not."""
    _proc: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc else None

    async def start(self) -> None:
        if self.running:
            return
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self._proc = await asyncio.create_subprocess_exec(
                *self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl+C at the terminal reaches the harness only
            )
        self.starts += 1
        self.started_at = asyncio.get_running_loop().time()

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no release of anything it holds."""
        await self._end(signal.SIGKILL, timeout=10.0)

    async def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a graceful stop), then SIGKILL if it is not gone within `timeout`."""
        await self._end(signal.SIGTERM, timeout=timeout)

    async def finish(self, timeout: float) -> int | None:
        """Wait for it to end by itself (SIGKILL past `timeout`); its exit code."""
        if self._proc is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proc.wait(), timeout)
        await self.kill()
        return self.exits[-1] if self.exits else None

    def reap(self) -> int | None:
        """The exit code if it ended by itself since the last look, else None."""
        if self._proc is None or self._proc.returncode is None:
            return None
        code = self._proc.returncode
        self.exits.append(code)
        self._proc = None
        return code

    async def _end(self, signum: signal.Signals, *, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        self.reap()

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
