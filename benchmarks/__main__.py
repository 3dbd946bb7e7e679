"""`python -m benchmarks` (`make bench`): payrelay's throughput and latency, and ceilings.

Starts everything it needs (payrelay as `payrelay serve` processes, the gateway simulator,
the load generator in a process of its own, scratch PostgreSQL databases and a unique
RabbitMQ prefix), measures, removes what it created, writes bench/results/<date>.json and
.png, and prints a table. Every payrelay figure is also given as a ratio to a ceiling
measured in the same run, since absolute numbers on a shared machine mean little.

    python -m benchmarks [--quick] [--backend embedded] [--only naive] [--out bench/results]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console

from benchmarks import ceilings, report, scenarios
from benchmarks.deployments import EMBEDDED, POSTGRES_RABBITMQ
from benchmarks.naive.suite import SCENARIOS as NAIVE_SCENARIOS
from payrelay.bootstrap import scratch_databases

DEFAULT_POSTGRES_URL = os.environ.get(
    "PAYRELAY_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
DEFAULT_RABBITMQ_URL = os.environ.get(
    "PAYRELAY_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
SECTIONS = ("ceilings", "pipeline", "naive")
"""What `--only` can pick: the ceilings, ingest and end to end, the naive pattern."""


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port),
                                 timeout=1).close()
    except OSError:
        return False
    return True


class Run:
    """One bench run: its results so far, and what was skipped or failed, with why."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.plan = scenarios.QUICK if args.quick else scenarios.Plan()
        self.servers = {"postgres_url": args.postgres_url, "rabbitmq_url": args.rabbitmq_url}
        self.results: dict[str, Any] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ"), "quick": args.quick,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "plan": self.plan.__dict__, "ceilings": {}, "ingest": {}, "end_to_end": {},
            "naive": {}, "skipped": [], "failed": [],
        }
        self.console = Console(width=160)

    async def measure(self, section: str, name: str,
                      work: Callable[[Path], Awaitable[dict[str, Any]]]) -> None:
        self.console.print(f"[bold]{section} {name}[/bold] ...")
        with tempfile.TemporaryDirectory(prefix="payrelay-bench-") as tmp:
            try:
                self.results[section][name] = await work(Path(tmp))
            except Exception as exc:
                logs = {p.name: p.read_text()[-2000:] for p in Path(tmp).rglob("*.log")}
                self.results["failed"].append({"scenario": f"{section} {name}",
                                               "reason": f"{type(exc).__name__}: {exc}",
                                               "logs": logs})

    def skip(self, scenario: str, reason: str) -> None:
        self.results["skipped"].append({"scenario": scenario, "reason": reason})

    def wanted(self, section: str) -> bool:
        """Whether `--only` asks for `section` (every section without `--only`)."""
        if self.args.only and section not in self.args.only:
            self.skip(section, "not asked for (--only)")
            return False
        return True

    def servers_up(self, backend: str) -> bool:
        if backend == EMBEDDED:
            return True
        return (reachable(self.args.postgres_url, 5432)
                and reachable(self.args.rabbitmq_url, 5672))


async def run_ceilings(run: Run) -> None:
    plan, pg, mq = run.plan, run.args.postgres_url, run.args.rabbitmq_url

    async def raw(url: str, tmp: Path) -> dict[str, Any]:
        return await ceilings.raw_ingest(
            url, tmp, count=plan.saturation_count, concurrency=plan.concurrency,
            rates=list(plan.rates), step_seconds=plan.step_seconds)

    run.console.print("[bold]ceilings[/bold] ...")
    run.results["ceilings"]["raw_ingest"] = section = {}
    with tempfile.TemporaryDirectory(prefix="payrelay-bench-") as tmp:
        section["sqlite"] = await raw(f"sqlite+aiosqlite:///{tmp}/raw.db", Path(tmp))
    if POSTGRES_RABBITMQ not in run.args.backend:
        run.skip("ceilings on PostgreSQL and RabbitMQ", "not asked for (--backend)")
        return
    if not run.servers_up(POSTGRES_RABBITMQ):
        run.skip("ceilings on PostgreSQL and RabbitMQ", "server not reachable")
        return
    async with scratch_databases(pg, ["payrelay_bench"] * 2) as (raw_db, tx_db):
        with tempfile.TemporaryDirectory(prefix="payrelay-bench-") as tmp:
            section["postgres"] = await raw(raw_db, Path(tmp))
        run.results["ceilings"]["postgres_transactions"] = await ceilings.postgres_transactions(
            tx_db, seconds=plan.ceiling_seconds)
    run.results["ceilings"]["rabbitmq_confirmed"] = await ceilings.rabbitmq_confirmed(
        mq, f"payrelay-bench-{uuid.uuid4().hex[:8]}.", seconds=plan.ceiling_seconds)


async def run_pipeline(run: Run) -> None:
    for backend in run.args.backend:
        if not run.servers_up(backend):
            run.skip(f"ingest and end to end on {backend}", "server not reachable")
            continue
        await run.measure("ingest", backend, partial(
            scenarios.ingest, backend, plan=run.plan, **run.servers))
        await run.measure("end_to_end", backend, partial(
            scenarios.end_to_end, backend, plan=run.plan, **run.servers))
    for backend in {EMBEDDED, POSTGRES_RABBITMQ} - set(run.args.backend):
        run.skip(f"ingest and end to end on {backend}", "not asked for (--backend)")


async def run_naive(run: Run) -> None:
    """The naive pattern side by side (benchmarks/naive): on PostgreSQL + RabbitMQ only."""
    if POSTGRES_RABBITMQ not in run.args.backend:
        run.skip("naive", "runs on postgres+rabbitmq, not asked for (--backend)")
    elif not run.servers_up(POSTGRES_RABBITMQ):
        run.skip("naive", "PostgreSQL or RabbitMQ not reachable")
    else:
        for name, scenario in NAIVE_SCENARIOS.items():
            await run.measure("naive", name, partial(scenario, plan=run.plan, **run.servers))


async def main_async(args: argparse.Namespace) -> int:
    run, started = Run(args), time.monotonic()
    try:
        if run.wanted("ceilings"):
            await run_ceilings(run)
    except Exception as exc:
        run.results["failed"].append({"scenario": "ceilings",
                                      "reason": f"{type(exc).__name__}: {exc}"})
    if run.wanted("pipeline"):
        await run_pipeline(run)
    if run.wanted("naive"):
        await run_naive(run)
    results = run.results
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    results["ratios"] = report.ratios(results)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / ("quick-" + results["date"] if args.quick else results["date"])
    not_drawn = None if args.no_plot else report.plot(results, stem.with_suffix(".png"))
    if args.no_plot or not_drawn:
        run.skip("plot", not_drawn or "--no-plot")
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str))
    report.render(results, run.console)
    run.console.print(f"wrote {stem.with_suffix('.json')}")
    return 1 if results["failed"] else 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--backend", action="append", choices=[EMBEDDED, POSTGRES_RABBITMQ],
                        help="repeatable; default: both")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--rabbitmq-url", default=DEFAULT_RABBITMQ_URL)
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--only", action="append", choices=SECTIONS,
                        help="repeatable: run only these sections (pipeline: ingest and "
                             "end to end); default: all")
    args = parser.parse_args()
    args.backend = args.backend or [EMBEDDED, POSTGRES_RABBITMQ]
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
