"""`payrelay chaos` end to end: a run of 1,000 payments with every fault kind passes on
private PostgreSQL + RabbitMQ instances and embedded, smaller ones on given servers and
under network faults and skewed clocks, and against a deliberately broken build it fails.

Each run starts the real processes (the simulator, and `payrelay serve` per role), kills
and restarts them and takes their servers down on a seeded schedule, and checks what the
gateway and both databases recorded. A run takes one to three minutes: customers who pay
twice "later" wait 20-40 s, and 1,000 payments at PRIVATE_RATE take a while to start.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from payrelay.chaos import ChaosOptions, FaultKind
from payrelay.chaos.checker import RECOVERED
from payrelay.chaos.options import (
    DEFAULT_FAULTS,
    NEEDS_PRIVATE_POSTGRES,
    NEEDS_PRIVATE_RABBITMQ,
    NETWORK,
)
from payrelay.chaos.report import ChaosReport
from payrelay.chaos.run import run_chaos
from payrelay.entrypoints.exits import ExitCode
from tests.support import POSTGRES_URL, RABBITMQ_URL, require_private_servers, require_server

pytestmark = pytest.mark.chaos
CLEAN = ("LOST=0 STUCK_BEYOND_SLA=0 DUPLICATED_EFFECTS=0 UNREFUNDED_DOUBLE_CHARGES=0 "
         "WRONGFUL_REFUNDS=0")
PRIVATE_PAYMENTS, PRIVATE_RATE = 1000, 15.0
"""The issue's CI runs: at least 1,000 payments with every fault kind, on private servers
and embedded, each inside three minutes on a 2-core machine (docs/reliability.md)."""


def assert_passed(report: ChaosReport, kinds: frozenset[FaultKind]) -> None:
    findings = report.to_json()["findings"][:10]
    assert report.summary_line() == CLEAN, findings
    assert report.ok, findings
    assert set(report.faults_by_kind()) == {k.value for k in kinds}
    # Each kind really happened at least once (not only "skipped" or "NOT injected").
    assert {f.planned.kind for f in report.faults
            if not f.detail.startswith(("skipped", "NOT injected"))} == kinds
    assert report.figures["settled"] == "yes"
    assert report.figures["customers who gave up"] == 0
    # Every plan that charges twice or pays a closed order ends compensated.
    assert report.verdict.classes["compensated"] > 0
    assert report.verdict.classes[RECOVERED] > 0  # lost webhooks, found by the reconciler


async def test_a_chaos_run_on_private_servers_with_every_fault_kind_passes(
    tmp_path: Path,
) -> None:
    require_private_servers()
    options = ChaosOptions(payments=PRIVATE_PAYMENTS, rate=PRIVATE_RATE, seed=11)
    report = await run_chaos(options, tmp_path)
    assert_passed(report, DEFAULT_FAULTS)
    assert str(report.figures["PostgreSQL"]).startswith("private cluster")
    assert str(report.figures["RabbitMQ"]).startswith("private node chaos-")
    assert report.figures["processes restarted"] > 0
    assert report.verdict.evidence["poison messages dead-lettered"] == \
        report.figures["poison messages published"] > 0


@pytest.mark.postgres
@pytest.mark.rabbitmq
async def test_a_chaos_run_on_given_servers_leaves_their_outages_off(tmp_path: Path) -> None:
    require_server("PostgreSQL", POSTGRES_URL)
    require_server("RabbitMQ", RABBITMQ_URL)
    options = ChaosOptions(payments=100, rate=10, seed=13, postgres_url=POSTGRES_URL,
                           rabbitmq_url=RABBITMQ_URL, private_postgres=False,
                           private_rabbitmq=False)
    report = await run_chaos(options, tmp_path)
    off = NEEDS_PRIVATE_POSTGRES | NEEDS_PRIVATE_RABBITMQ
    assert_passed(report, DEFAULT_FAULTS - off)
    assert all(kind in str(report.figures["faults off"]) for kind in off)
    assert report.figures["PostgreSQL"] == "given server (scratch databases)"


async def test_an_embedded_chaos_run_passes(tmp_path: Path) -> None:
    options = ChaosOptions(payments=PRIVATE_PAYMENTS, rate=PRIVATE_RATE, seed=12, embedded=True)
    report = await run_chaos(options, tmp_path)
    assert_passed(report, options.applicable_faults())


@pytest.mark.postgres
@pytest.mark.rabbitmq
async def test_a_chaos_run_under_network_faults_and_a_skewed_clock_passes(
    tmp_path: Path,
) -> None:
    """Links stalled past payrelay's timeouts, slowed and cut (through the proxies), and
    processes on clocks minutes off: nothing lost, doubled or stuck. Seed 90 draws
    PostgreSQL silent for 17 s (past the LISTEN connection's 15 s probe) and RabbitMQ for
    11 s, cuts and slow windows on both, and three processes 60-101 s behind, the payments
    API among them (webhook signatures 60 s "from the future", inside the 300 s tolerance).
    A clock minutes *ahead* costs the SLA (docs/reliability.md): this seed draws none.
    Needs Debian's faketime (.ci/run installs it); without it the run fails, saying so."""
    require_server("PostgreSQL", POSTGRES_URL)
    require_server("RabbitMQ", RABBITMQ_URL)
    kinds = NETWORK | {FaultKind.CLOCK_SKEW}
    options = ChaosOptions(payments=200, rate=10, seed=90, faults=kinds,
                           postgres_url=POSTGRES_URL, rabbitmq_url=RABBITMQ_URL,
                           private_postgres=False, private_rabbitmq=False)
    report = await run_chaos(options, tmp_path)
    findings = report.to_json()["findings"][:10]
    assert report.summary_line() == CLEAN, findings
    assert report.ok, findings
    assert set(report.faults_by_kind()) == {k.value for k in kinds}
    assert report.figures["settled"] == "yes"
    assert report.figures["processes restarted"] > 0  # each skew starts a worker twice
    assert int(report.figures["connections reset by cuts"]) > 0
    # Not asserted: that no customer gave up. A process whose clock is behind by more than
    # the run's 40 s order expiry stamps orders that expire as soon as a true clock looks
    # at them (docs/reliability.md, "Network faults and a skewed clock").


async def test_the_checker_fails_a_build_whose_inboxes_forget(tmp_path: Path) -> None:
    """The same command, run against consumers that apply every redelivery again: the
    republished outbox rows are then recorded twice, and the run exits non-zero."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "payrelay", "chaos", "--embedded", "--payments", "30",
        "--rate", "2", "--faults", "republish", "--seed", "5", "--json",
        "--log-dir", str(tmp_path),
        env={**os.environ, "PAYRELAY_TEST_ONLY_FORGETFUL_INBOX": "true"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(300):
            out, err = await process.communicate()
    except BaseException:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == ExitCode.VIOLATED, err.decode()[-2000:]
    report = json.loads(out)
    assert report["violations"]["DUPLICATED_EFFECTS"] > 0, report["summary"]
    assert report["summary"] != CLEAN
    assert all(f["payment_id"] for f in report["findings"]
               if f["violation"] == "DUPLICATED_EFFECTS")
