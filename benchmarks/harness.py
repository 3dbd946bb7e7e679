"""What every scenario needs: child processes, free ports, the load generator, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from payrelay.chaos.processes import free_port as chaos_free_port

PAYRELAY = [sys.executable, "-m", "payrelay"]
SECRET = "payrelay-bench-webhook-secret"
TOKEN = "TEST-payrelay-bench-token"


def free_port() -> int:
    """A port nothing listens on now (the child binds it a moment later)."""
    return chaos_free_port()


@dataclass
class Children:
    """Processes started for one scenario, each logging to its own file in `log_dir`.

    Each has a name, so a recovery scenario can stop or kill one and start it again with the
    same arguments, as a supervisor would; `started` keeps every process ever started, so
    the block's end stops them all.
    """

    log_dir: Path
    env: dict[str, str]
    started: list[subprocess.Popen[bytes]]
    args: dict[str, list[str]] = field(default_factory=dict)
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        # Appended to: a restarted process's log follows the one of the run it replaces.
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(list(args), env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.started.append(proc)
        self.args[name], self.running[name] = list(args), proc
        return proc

    async def stop(self, name: str, signum: int = signal.SIGTERM, timeout: float = 30.0
                   ) -> int:
        """Send `signum` to the process `name`, wait for it to exit: its exit code."""
        proc = self.running.pop(name)
        proc.send_signal(signum)
        return await asyncio.to_thread(proc.wait, timeout)

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """The process `name` again, after `stop`, with the arguments it first had."""
        return self.start(name, self.args[name])

    def check_alive(self) -> None:
        for proc in self.running.values():
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}; logs in "
                                   f"{self.log_dir}")


@contextlib.asynccontextmanager
async def children(env: dict[str, str], log_dir: Path) -> AsyncIterator[Children]:
    """Start processes inside the block; SIGTERM (then SIGKILL) every one at its end."""
    running = Children(log_dir, {**os.environ, **env}, [])
    try:
        yield running
    finally:
        for proc in running.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in running.started:
            try:
                await asyncio.to_thread(proc.wait, 20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def migrate(env: dict[str, str]) -> None:
    done = await asyncio.to_thread(subprocess.run, [*PAYRELAY, "migrate"],
                                   env={**os.environ, **env}, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"payrelay migrate failed: {done.stderr.decode()}")


async def wait_ready(urls: Sequence[str], procs: Children, timeout: float = 60.0) -> None:
    """Until each URL answers 200 (`/readyz` of an API, a raw server's anything)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as http:
        for url in urls:
            while True:
                procs.check_alive()
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(url)).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} not ready after {timeout}s")
                await asyncio.sleep(0.1)


async def wait_port_file(path: Path, procs: Children, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        procs.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"no port in {path} after {timeout}s")
        await asyncio.sleep(0.05)
    return int(path.read_text())


async def load(url: str, payment_ids: Sequence[str], *, rate: float, concurrency: int = 32
               ) -> dict[str, Any]:
    """Run the load generator in its own process; its result (see loadgen.py)."""
    with tempfile.TemporaryDirectory(prefix="payrelay-bench-") as tmp:
        spec, result = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec.write_text(json.dumps({"url": url, "secret": SECRET, "rate": rate,
                                    "concurrency": concurrency,
                                    "payment_ids": list(payment_ids)}))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.loadgen", str(spec), str(result))
        if await proc.wait() != 0:
            raise RuntimeError("the load generator failed")
        loaded: dict[str, Any] = json.loads(result.read_text())
        return loaded


def percentiles_ms(samples: Sequence[float]) -> dict[str, float | None]:
    """p50 and p99 of seconds, in milliseconds (None without samples)."""
    if not samples:
        return {"p50_ms": None, "p99_ms": None}
    if len(samples) == 1:
        return {"p50_ms": samples[0] * 1000, "p99_ms": samples[0] * 1000}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49] * 1000, 2), "p99_ms": round(cuts[98] * 1000, 2)}


def ratio(value: float | None, ceiling: float | None) -> float | None:
    if value is None or not ceiling:
        return None
    return round(value / ceiling, 3)


def http_summary(result: dict[str, Any]) -> dict[str, Any]:
    """Answers per second and latency of one load-generator run."""
    ok = [lat for lat, st in zip(result["latency_s"], result["status"], strict=True)
          if st == 200]
    ends = [s + lat for s, lat in zip(result["sent_at"], result["latency_s"], strict=True)]
    elapsed = max(ends) - result["started_at"] if ends else 0.0
    statuses: dict[str, int] = {}
    for st in result["status"]:
        statuses[str(st)] = statuses.get(str(st), 0) + 1
    return {"sent": len(result["status"]), "ok": len(ok), "statuses": statuses,
            "answered_per_s": round(len(ok) / elapsed, 1) if elapsed else None,
            **percentiles_ms(ok)}
