"""The seeded fault schedule, and the log of every fault injected with its time.

The whole schedule is drawn before the run from the seed alone: the same seed, kinds,
window and processes give the same faults at the same offsets against the same targets.
What a fault then meets (which rows a worker held when it was killed) is up to timing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from payrelay.chaos.options import NETWORK, FaultKind

log = logging.getLogger("payrelay.chaos")

MEAN_GAP_SECONDS: dict[FaultKind, float] = {
    FaultKind.KILL: 6.0,
    FaultKind.PG_TERMINATE: 8.0,
    FaultKind.GATEWAY: 12.0,
    FaultKind.REPUBLISH: 8.0,
    FaultKind.BROKER_CLOSE: 15.0,
}
"""Mean gaps of the kinds that fall at random; outages take turns (TAKING_TURNS)."""
POISON_MESSAGES = 3
KILL_PAUSE_SECONDS = (0.5, 4.0)
GATEWAY_WINDOW_SECONDS = (2.0, 5.0)
OUTAGE_SECONDS: dict[FaultKind, tuple[float, float]] = {
    FaultKind.BROKER_STOP: (2.0, 6.0),
    FaultKind.ORDERS_DB_DOWN: (2.0, 8.0),
    FaultKind.DB_DOWN: (2.0, 6.0),
}
"""How long a private server (or the order database) stays down: a few seconds, well
inside the consumers' retries and the reconciler's SLA, as a restart or failover would."""
# How long each windowed fault lasts. A stall up to 20 s outlasts every timeout payrelay
# has on a connection to its servers (the 15 s LISTEN probe, 5 s publish confirms).
WINDOW_SECONDS: dict[FaultKind, tuple[float, float]] = {
    FaultKind.NET_STALL: (2.0, 20.0),
    FaultKind.NET_SLOW: (3.0, 10.0),
    FaultKind.NET_CUT: (0.0, 5.0),
    FaultKind.CLOCK_SKEW: (10.0, 30.0),
}
TAKING_TURNS = frozenset({
    FaultKind.BROKER_STOP, FaultKind.ORDERS_DB_DOWN, FaultKind.DB_DOWN, FaultKind.NET_STALL,
    FaultKind.NET_SLOW, FaultKind.NET_CUT, FaultKind.CLOCK_SKEW,
})
"""Kinds that take something away for seconds (a server, a link, a process's true clock):
one at a time, each followed by quiet time. Drawn independently they overlapped: a
20,000-payment run with every kind had a server down or a link cut most of the time, its
backlog never drained and half its customers gave up, which shows a machine overloaded,
not a failure window closed. The rest (kills, terminated connections, gateway errors,
republished rows, closed broker connections) still fall at random, across outages too."""
QUIET_SECONDS = (4.0, 12.0)
"""Quiet time after an outage ends, before the next one starts."""
SLOW_LATENCY_SECONDS = (0.05, 0.5)
SKEW_SECONDS = (5.0, 180.0)
"""How far a skewed clock is off, ahead or behind."""


@dataclass(frozen=True, slots=True)
class PlannedFault:
    at: float
    """Seconds after the run started."""
    kind: FaultKind
    target: str | None = None
    """The process a kill hits."""
    seconds: float = 0.0
    """How long it lasts: a killed process's pause, a fault window's length."""
    amount: float = 0.0
    """How bad it is: a slow link's latency, a skewed clock's offset (seconds)."""


@dataclass(frozen=True, slots=True)
class InjectedFault:
    planned: PlannedFault
    started: float
    ended: float
    detail: str

    def line(self) -> str:
        target = f" {self.planned.target}" if self.planned.target else ""
        return (f"t={self.started:7.2f}s..{self.ended:7.2f}s {self.planned.kind}{target}: "
                f"{self.detail}")


def plan_faults(
    kinds: frozenset[FaultKind], *, seed: int, window: float, targets: list[str],
    links: tuple[str, ...] = (),
) -> list[PlannedFault]:
    """Every fault of a run, in time order, drawn from `seed` alone; a network fault hits
    one of `links`, a kill or a skewed clock one of `targets`."""
    turns = kinds & TAKING_TURNS if links else kinds & TAKING_TURNS - NETWORK
    planned = _taking_turns(turns, seed=seed, window=window, targets=targets, links=links)
    for kind in sorted(kinds - TAKING_TURNS):  # one RNG per kind: one off leaves the rest be
        rng = random.Random(f"{seed}:faults:{kind}")
        if kind is FaultKind.NOTIFY:
            planned.append(PlannedFault(0.0, kind, seconds=window))
        elif kind is FaultKind.POISON:
            planned += [PlannedFault(rng.uniform(0, window), kind)
                        for _ in range(POISON_MESSAGES)]
        else:
            planned += _spread(kind, rng, window, targets)
    return sorted(planned, key=lambda f: f.at)


def _spread(
    kind: FaultKind, rng: random.Random, window: float, targets: list[str]
) -> list[PlannedFault]:
    """Faults of one kind at random times (exponential gaps) over the window; at least one,
    so that a short run still meets every kind switched on."""
    found: list[PlannedFault] = []
    at = rng.expovariate(1 / MEAN_GAP_SECONDS[kind])
    if at >= window:
        at = rng.uniform(window / 2, window)
    while at < window:
        if kind is FaultKind.KILL:
            found.append(PlannedFault(at, kind, rng.choice(targets),
                                      rng.uniform(*KILL_PAUSE_SECONDS)))
        elif kind is FaultKind.GATEWAY:
            found.append(PlannedFault(at, kind, seconds=rng.uniform(*GATEWAY_WINDOW_SECONDS)))
        else:
            found.append(PlannedFault(at, kind))
        at += rng.expovariate(1 / MEAN_GAP_SECONDS[kind])
    return found


def _taking_turns(
    kinds: frozenset[FaultKind], *, seed: int, window: float, targets: list[str],
    links: tuple[str, ...],
) -> list[PlannedFault]:
    """Outages one after another, in rounds that each meet every kind once (in a seeded
    order), with quiet time between; a kind a short window has no turn for is put at a
    random time in its second half, so that a short run still meets every kind."""
    turns = random.Random(f"{seed}:turns")
    draws = {kind: random.Random(f"{seed}:faults:{kind}") for kind in kinds}
    found: list[PlannedFault] = []
    at, round_left = turns.uniform(*QUIET_SECONDS), list[FaultKind]()
    while kinds:
        if not round_left:
            round_left = sorted(kinds)
            turns.shuffle(round_left)
        kind = round_left.pop()
        fault = _one_outage(kind, draws[kind], at, links if kind in NETWORK else targets)
        if fault.at + fault.seconds >= window:
            break
        found.append(fault)
        at = fault.at + fault.seconds + turns.uniform(*QUIET_SECONDS)
    for kind in sorted(kinds - {f.kind for f in found}):
        found.append(_one_outage(kind, draws[kind], turns.uniform(window / 2, window),
                                 links if kind in NETWORK else targets))
    return found


def _one_outage(kind: FaultKind, rng: random.Random, at: float, targets: list[str] |
                tuple[str, ...]) -> PlannedFault:
    if kind in OUTAGE_SECONDS:
        return PlannedFault(at, kind, seconds=rng.uniform(*OUTAGE_SECONDS[kind]))
    return _windowed(kind, rng, at, list(targets))


def _windowed(kind: FaultKind, rng: random.Random, at: float, targets: list[str]) -> PlannedFault:
    """A network fault on one link, or a skewed clock in one process, for a while."""
    target, seconds = rng.choice(targets), rng.uniform(*WINDOW_SECONDS[kind])
    amount = 0.0
    if kind is FaultKind.NET_SLOW:
        amount = rng.uniform(*SLOW_LATENCY_SECONDS)
    elif kind is FaultKind.CLOCK_SKEW:
        amount = rng.uniform(*SKEW_SECONDS) * rng.choice((-1, 1))
    return PlannedFault(at, kind, target, seconds, amount)


Injector = Callable[[PlannedFault], Awaitable[str]]


async def run_schedule(
    planned: list[PlannedFault], inject: Injector, *, started_at: float
) -> list[InjectedFault]:
    """Inject each fault at its time (concurrently: a kill's pause holds up no other
    fault); every one is logged as it ends, with its times and what it did."""
    loop = asyncio.get_running_loop()
    done: list[InjectedFault] = []

    async def one(fault: PlannedFault) -> None:
        await asyncio.sleep(max(0.0, started_at + fault.at - loop.time()))
        began = loop.time() - started_at
        try:
            detail = await inject(fault)
        except Exception as exc:  # a fault that could not be injected is reported, not fatal
            detail = f"NOT injected: {type(exc).__name__}: {exc}"[:300]
        record = InjectedFault(fault, began, loop.time() - started_at, detail)
        log.warning("chaos fault %s", record.line())
        done.append(record)

    async with asyncio.TaskGroup() as tg:
        for fault in planned:
            tg.create_task(one(fault))
    return sorted(done, key=lambda f: f.started)
