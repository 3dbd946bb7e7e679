"""The production topology as real OS processes: the gateway simulator, never killed, and
payrelay's roles, each in a `payrelay serve` process of its own that may be killed and is
started again (by a fault's end, or by the supervisor when it exits by itself, as systemd
or Kubernetes would)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from payrelay.chaos.backing import Backing
from payrelay.chaos.netproxy import SERVER_LINKS, Network, start_network
from payrelay.chaos.processes import PAYRELAY, OwnedProcess, free_port
from payrelay.domain.retry import Backoff

log = logging.getLogger("payrelay.chaos")

# Every role in a process of its own, as the issue lists them: both APIs, two processors,
# both relays, two order consumers, the outcome consumer, refunder, reconciler, expirer.
SPLIT_LAYOUT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("payments-api", ("payments-api",)),
    ("orders-api", ("orders-api",)),
    ("processor-1", ("processor",)),
    ("processor-2", ("processor",)),
    ("payments-relay", ("payments-relay",)),
    ("orders-relay", ("orders-relay",)),
    ("order-consumer-1", ("order-consumer",)),
    ("order-consumer-2", ("order-consumer",)),
    ("outcome-consumer", ("outcome-consumer",)),
    ("refunder", ("refunder",)),
    ("reconciler", ("reconciler",)),
    ("order-expirer", ("order-expirer",)),
)
# The local transport reaches only consumers in its own process: one process, every role.
EMBEDDED_LAYOUT: tuple[tuple[str, tuple[str, ...]], ...] = (("serve-all", ("all",)),)

# Short enough that the reconciler, the expirer and the retries all act within a run of a
# minute or two (the consumer's retry delays are the backing's).
CHAOS_SETTINGS = {
    "PAYRELAY_RECONCILE_INTERVAL_SECONDS": "2",
    "PAYRELAY_RECONCILE_OUTCOME_SLA_SECONDS": "6",
    "PAYRELAY_RECONCILE_CHECKOUT_AGE_SECONDS": "4",
    "PAYRELAY_RECONCILE_UNSETTLED_AGE_SECONDS": "4",
    # Longer than the database outages (and gateway 5xx windows) a customer's checkout
    # may meet back to back: at 12 s, or even 30, some orders expired before it got in.
    "PAYRELAY_ORDER_EXPIRY_SECONDS": "40",
    "PAYRELAY_RETRY_BASE_SECONDS": "0.1",
    "PAYRELAY_RETRY_CAP_SECONDS": "2",
}
READY_SECONDS = 60.0
RESTART_BACKOFF = Backoff(base=2.0, factor=2.0, cap=8.0)
"""The supervisor's backoff for a worker that exits by itself, as systemd's `RestartSec`
with a burst limit or Kubernetes' CrashLoopBackOff would: 1-2 s, doubled each time it
exits again within STABLE_SECONDS of its start, up to 8 s. Restarted at once instead, a
worker that could not reach its database through a 20 s outage started dozens of times,
each start a second of CPU on a 2-core machine (450 such exits in the first 20,000-payment
run)."""
STABLE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the parts listen, and the credentials a client of each needs."""

    simulator_url: str
    payments_url: str
    payments_internal_url: str
    orders_url: str
    access_token: str
    webhook_secret: str


def _endpoints() -> Endpoints:
    def url() -> str:
        return f"http://127.0.0.1:{free_port()}"

    return Endpoints(
        simulator_url=url(), payments_url=url(), payments_internal_url=url(), orders_url=url(),
        access_token=f"TEST-chaos-{secrets.token_hex(8)}",
        webhook_secret=f"whsec-chaos-{secrets.token_hex(8)}",
    )


def _port(url: str) -> str:
    return url.rsplit(":", 1)[1]


@dataclass
class Topology:
    """The running processes; `workers` are payrelay's, which faults may kill."""

    endpoints: Endpoints
    simulator: OwnedProcess
    workers: dict[str, OwnedProcess]
    down: set[str] = field(default_factory=set)
    """Workers a fault killed and has not started again: the supervisor leaves them be."""
    unexpected_exits: list[tuple[str, int]] = field(default_factory=list)
    closing: bool = False
    """Set once the run ends: from then on nothing is started again."""
    network: Network | None = None
    """The proxies between the workers and their servers, when the run has network faults."""

    async def kill(self, name: str) -> None:
        self.down.add(name)
        await self.workers[name].kill()

    async def restart(self, name: str) -> None:
        if not self.closing:
            await self.workers[name].start()
            self.down.discard(name)

    async def supervise(self, stop: asyncio.Event) -> None:
        """Start again any worker that exited by itself (a serve process exits 1 when its
        database or broker is unreachable at start, for its supervisor to retry)."""
        loop, rng = asyncio.get_running_loop(), random.Random("supervisor")
        due: dict[str, float] = {}  # worker -> when to start it again
        exits_in_a_row: dict[str, int] = {}
        while not stop.is_set():
            for name, proc in self.workers.items():
                if name in self.down:
                    continue
                code, now = proc.reap(), loop.time()
                if code is not None and not self.closing:
                    again = now - proc.started_at < STABLE_SECONDS
                    exits_in_a_row[name] = exits_in_a_row.get(name, 0) + 1 if again else 1
                    pause = RESTART_BACKOFF.delay(exits_in_a_row[name], rng).total_seconds()
                    due[name] = now + pause
                    log.warning("chaos: %s exited by itself (%s); starting it again in "
                                "%.1f s", name, code, pause)
                    self.unexpected_exits.append((name, code))
                if due.get(name, now + 1) <= now and not self.closing:
                    del due[name]
                    await proc.start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)

    def restarts(self) -> int:
        return sum(max(p.starts - 1, 0) for p in self.workers.values())

    async def respawn(self, name: str, env: dict[str, str]) -> None:
        """Start `name` again with `env` (a skewed clock, or the real one again). A worker
        a kill holds down only takes `env`: the kill's restart starts it with it."""
        proc = self.workers[name]
        proc.env = env
        if name in self.down or self.closing:
            return
        self.down.add(name)  # meanwhile, neither the supervisor nor a kill touches it
        try:
            await proc.stop()
            if not self.closing:
                await proc.start()
        finally:
            self.down.discard(name)


def process_env(backing: Backing, endpoints: Endpoints, extra: dict[str, str]) -> dict[str, str]:
    """The environment of every process of a run (the simulator's too)."""
    return {
        **os.environ,
        **CHAOS_SETTINGS,
        **backing.env(),
        "PAYRELAY_GATEWAY_BASE_URL": endpoints.simulator_url,
        "PAYRELAY_GATEWAY_ACCESS_TOKEN": endpoints.access_token,
        "PAYRELAY_WEBHOOK_SECRETS": endpoints.webhook_secret,
        "PAYRELAY_PUBLIC_URL": endpoints.payments_url,
        "PAYRELAY_PAYMENTS_URL": endpoints.payments_internal_url,
        # Split APIs share the token; `serve --role all` would make its own anyway.
        "PAYRELAY_SERVICE_TOKEN": secrets.token_urlsafe(24),
        **extra,
    }


@contextlib.asynccontextmanager
async def running_topology(
    backing: Backing, log_dir: Path, *, extra_env: dict[str, str], proxied: bool = False
) -> AsyncIterator[Topology]:
    """The simulator and every payrelay process, migrated and ready; all stopped after.
    `proxied`: the workers reach their servers through `Topology.network`."""
    endpoints = _endpoints()
    env = process_env(backing, endpoints, extra_env)
    await _migrate(env, log_dir)
    network = await start_network(env, SERVER_LINKS) if proxied else None
    simulator = OwnedProcess(
        "simulator", (*PAYRELAY, "simulator", "--port", _port(endpoints.simulator_url)),
        log_dir / "simulator.log", env,
    )
    layout = EMBEDDED_LAYOUT if backing.embedded else SPLIT_LAYOUT
    workers = _workers(layout, endpoints, log_dir, network.env(env) if network else env)
    topology = Topology(endpoints, simulator, workers, network=network)
    try:
        await simulator.start()
        await _wait_ready([f"{endpoints.simulator_url}/simulator/stats"], [simulator])
        for proc in workers.values():
            await proc.start()
        await _wait_ready(
            [f"{endpoints.payments_url}/readyz", f"{endpoints.orders_url}/readyz"],
            list(workers.values()),
        )
        yield topology
    finally:
        # Payrelay first, so nothing is left calling a gateway that is gone.
        topology.closing = True
        await asyncio.gather(*(p.stop() for p in workers.values()))
        await simulator.stop()
        if network is not None:
            await network.close()


def _workers(
    layout: tuple[tuple[str, tuple[str, ...]], ...], endpoints: Endpoints, log_dir: Path,
    env: dict[str, str],
) -> dict[str, OwnedProcess]:
    ports = ("--payments-port", _port(endpoints.payments_url), "--payments-internal-port",
             _port(endpoints.payments_internal_url), "--orders-port", _port(endpoints.orders_url))
    return {
        name: OwnedProcess(
            name, (*PAYRELAY, "serve", *(a for r in roles for a in ("--role", r)), *ports),
            log_dir / f"{name}.log", env,
        )
        for name, roles in layout
    }


async def _migrate(env: dict[str, str], log_dir: Path) -> None:
    proc = OwnedProcess("migrate", (*PAYRELAY, "migrate"), log_dir / "migrate.log", env)
    await proc.start()
    if await proc.finish(timeout=120.0) != 0:
        raise RuntimeError(f"payrelay migrate failed: {proc.log_tail()}")


async def _wait_ready(urls: list[str], procs: list[OwnedProcess]) -> None:
    """Until each URL answers 200; fail with the log of any process that died meanwhile."""
    deadline = time.monotonic() + READY_SECONDS
    async with httpx.AsyncClient(timeout=2) as http:
        for url in urls:
            while True:
                for proc in procs:
                    if not proc.running:
                        raise RuntimeError(f"{proc.name} exited: {proc.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(url)).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} not ready after {READY_SECONDS:.0f}s")
                await asyncio.sleep(0.1)
