"""The network and clock fault kinds: planned from the seed on the run's links and
processes, a skewed clock started through libfaketime (real wall clock off, monotonic
clock true), and a worker started again with a new environment by the topology."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from payrelay.chaos import FaultKind
from payrelay.chaos.options import DEFAULT_FAULTS, NETWORK
from payrelay.chaos.processes import OwnedProcess
from payrelay.chaos.schedule import SKEW_SECONDS, SLOW_LATENCY_SECONDS, plan_faults
from payrelay.chaos.skew import faketime_library, skewed_env
from payrelay.chaos.topology import Endpoints, Topology
from payrelay.entrypoints.chaos_command import parse_faults

SLEEPER = (sys.executable, "-c", "import time; time.sleep(60)")
ENDPOINTS = Endpoints("http://sim", "http://pay", "http://internal", "http://orders", "t", "s")
LINKS = ("gateway", "postgres", "rabbitmq")


def test_network_faults_hit_the_links_and_a_skewed_clock_a_worker() -> None:
    kinds = NETWORK | {FaultKind.CLOCK_SKEW}
    plan = plan_faults(kinds, seed=4, window=120.0, targets=["a", "b"], links=LINKS)
    assert {f.kind for f in plan} == kinds
    assert {f.target for f in plan if f.kind in NETWORK} <= set(LINKS)
    for fault in plan:
        assert fault.seconds >= 0
        if fault.kind is FaultKind.NET_SLOW:
            assert SLOW_LATENCY_SECONDS[0] <= fault.amount <= SLOW_LATENCY_SECONDS[1]
        if fault.kind is FaultKind.CLOCK_SKEW:
            assert fault.target in {"a", "b"}
            assert SKEW_SECONDS[0] <= abs(fault.amount) <= SKEW_SECONDS[1]
    again = plan_faults(kinds, seed=4, window=120.0, targets=["a", "b"], links=LINKS)
    assert plan == again


def test_a_run_without_links_plans_no_network_fault() -> None:
    assert plan_faults(NETWORK, seed=1, window=60.0, targets=["a"]) == []


def test_the_default_kinds_are_every_kind() -> None:
    assert parse_faults("default") == DEFAULT_FAULTS == set(FaultKind) == parse_faults("all")
    assert parse_faults("net_stall,clock_skew") == {FaultKind.NET_STALL, FaultKind.CLOCK_SKEW}


def test_a_missing_libfaketime_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("payrelay.chaos.skew._LIBRARY_GLOBS", ("/nonexistent/libfaketime.so.1",))
    with pytest.raises(ValueError, match=r"apt-get install -y faketime"):
        faketime_library()


def test_a_skewed_process_sees_its_wall_clock_off_and_its_monotonic_clock_true() -> None:
    """Needs Debian's faketime (.ci/run installs it); fails, saying so, without it."""
    env = skewed_env(dict(os.environ), -120, faketime_library())
    probe = "import json, time; print(json.dumps([time.time(), time.monotonic()]))"
    before = (time.time(), time.monotonic())
    out = subprocess.run([sys.executable, "-c", probe], env=env, check=True,
                         capture_output=True, text=True, timeout=30).stdout
    wall, monotonic = json.loads(out)
    assert -125 < wall - before[0] < -115
    assert 0 <= monotonic - before[1] < 5


async def test_a_worker_started_again_takes_its_new_environment(tmp_path: Path) -> None:
    proc = OwnedProcess("w", SLEEPER, tmp_path / "w.log", dict(os.environ))
    topology = Topology(ENDPOINTS, OwnedProcess("sim", SLEEPER, tmp_path / "s.log", {}),
                        {"w": proc})
    await proc.start()
    first = proc.pid
    await topology.respawn("w", {**os.environ, "SKEWED": "1"})
    assert proc.running and proc.pid != first and proc.env["SKEWED"] == "1"
    assert "w" not in topology.down
    await topology.kill("w")  # held down by a kill: only the environment changes
    await topology.respawn("w", dict(os.environ))
    assert not proc.running and "SKEWED" not in proc.env
    await topology.restart("w")
    assert proc.running
    await proc.stop()
