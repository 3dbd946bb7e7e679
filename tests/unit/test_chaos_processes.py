"""The chaos topology's processes: killed, started again, and supervised like a real
deployment's (a worker that exits by itself is started again; one a fault holds down, or
any once the run is closing, is not)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from payrelay.chaos.processes import OwnedProcess
from payrelay.chaos.topology import Endpoints, Topology

SLEEPER = (sys.executable, "-c", "import time; time.sleep(60)")
QUITTER = (sys.executable, "-c", "raise SystemExit(1)")
ENDPOINTS = Endpoints("http://sim", "http://pay", "http://internal", "http://orders", "t", "s")


def owned(name: str, args: tuple[str, ...], tmp_path: Path) -> OwnedProcess:
    return OwnedProcess(name, args, tmp_path / f"{name}.log", dict(os.environ))


async def test_a_killed_process_starts_again_and_its_exits_are_kept(tmp_path: Path) -> None:
    proc = owned("w", SLEEPER, tmp_path)
    await proc.start()
    first = proc.pid
    await proc.kill()
    assert not proc.running and proc.exits == [-9]
    await proc.start()
    assert proc.running and proc.pid != first and proc.starts == 2
    await proc.stop()
    assert proc.exits == [-9, -15]


async def test_the_supervisor_restarts_what_exits_by_itself_but_not_what_is_held_down(
    tmp_path: Path,
) -> None:
    quitter, held = owned("quitter", QUITTER, tmp_path), owned("held", SLEEPER, tmp_path)
    topology = Topology(ENDPOINTS, owned("sim", SLEEPER, tmp_path),
                        {"quitter": quitter, "held": held})
    await quitter.start()
    await held.start()
    await topology.kill("held")
    stop = asyncio.Event()
    supervising = asyncio.create_task(topology.supervise(stop))
    await asyncio.sleep(2.5)
    topology.closing = True
    await asyncio.sleep(1.0)
    stop.set()
    await supervising
    await topology.restart("held")  # closing: nothing starts any more
    assert quitter.starts >= 2 and topology.unexpected_exits[0] == ("quitter", 1)
    assert held.starts == 1 and not held.running
    restarts_when_closed = quitter.starts
    await asyncio.sleep(0.6)
    assert quitter.starts == restarts_when_closed
    await quitter.stop()


async def test_a_worker_that_keeps_exiting_is_started_again_ever_later(tmp_path: Path) -> None:
    # Restarted at once, a worker whose database is down for 20 s started dozens of times.
    quitter = owned("quitter", QUITTER, tmp_path)
    topology = Topology(ENDPOINTS, owned("sim", SLEEPER, tmp_path), {"quitter": quitter})
    await quitter.start()
    stop = asyncio.Event()
    supervising = asyncio.create_task(topology.supervise(stop))
    await asyncio.sleep(5.0)  # backoff 1 s, 2 s, 4 s: started at ~0, ~1, ~3 (and not ~7)
    stop.set()
    await supervising
    assert 2 <= quitter.starts <= 3, quitter.starts
    assert len(topology.unexpected_exits) >= 2
    await quitter.stop()
