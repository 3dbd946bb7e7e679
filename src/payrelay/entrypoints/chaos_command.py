"""`payrelay chaos`: the production roles as OS processes, faults on a seeded schedule, and
an invariant checker at the end (see `payrelay/chaos/`)."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from payrelay.chaos import ChaosOptions, FaultKind
from payrelay.chaos.options import DEFAULT_FAULTS, DEFAULT_POSTGRES_URL, DEFAULT_RABBITMQ_URL
from payrelay.entrypoints.event_loop import run as run_on_loop
from payrelay.entrypoints.exits import ExitCode, exit_on_failure
from payrelay.entrypoints.logs import configure_logging

if TYPE_CHECKING:
    from payrelay.chaos.report import ChaosReport

__all__ = ["chaos", "parse_faults"]

GIVEN_POSTGRES_HELP = ("Run on this server (scratch databases) instead of a private cluster; "
                       "the faults that take PostgreSQL down are then off.")
GIVEN_RABBITMQ_HELP = ("Run on this broker (a unique prefix) instead of a private node; the "
                       "faults that stop it or cut its connections are then off.")


def parse_faults(text: str) -> frozenset[FaultKind]:
    """`kill,pg_terminate` -> those kinds; `default` and `all` (every kind), `none`."""
    words = {w.strip() for w in text.split(",") if w.strip()}
    if words == {"default"}:
        return DEFAULT_FAULTS
    if words == {"all"}:
        return frozenset(FaultKind)
    if words in ({"none"}, set()):
        return frozenset()
    try:
        return frozenset(FaultKind(w) for w in words)
    except ValueError as exc:
        choices = ", ".join(FaultKind)
        raise typer.BadParameter(f"{exc}; choose from {choices}, default, all, none") from exc


def chaos(
    payments: int = typer.Option(200, min=1, help="Payments the customers make (roughly)."),
    rate: float = typer.Option(10.0, min=0.1, help="Payments started per second."),
    duration: float | None = typer.Option(None, min=1, help="Stop starting customers after "
                                          "this many seconds, even short of --payments."),
    seed: int = typer.Option(1, help="Seed for plans and faults: same seed, same schedule."),
    faults: str = typer.Option("default", help="Comma-separated: " + ",".join(FaultKind)
                               + "; or default = all (clock_skew needs Debian's "
                               "faketime), none."),
    embedded: bool = typer.Option(False, "--embedded", help="One serve process on SQLite and "
                                  "the local transport, instead of PostgreSQL + RabbitMQ."),
    postgres_url: str | None = typer.Option(None, help=GIVEN_POSTGRES_HELP),
    rabbitmq_url: str | None = typer.Option(None, help=GIVEN_RABBITMQ_HELP),
    sla: float = typer.Option(45.0, min=1, help="Seconds an approval may take to pay its order."),
    settle_timeout: float = typer.Option(90.0, min=1, help="Seconds to wait for quiet after "
                                         "the last customer."),
    log_dir: Path | None = typer.Option(None, help="Keep process logs here (default: a temp "
                                        "directory, removed when the run passes)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Run payrelay as real processes under faults, then check nothing was lost or doubled."""
    from payrelay.chaos.run import run_chaos

    configure_logging(logging.WARNING)  # the faults it injects, not every payment
    options = ChaosOptions(
        payments=payments, rate=rate, duration=duration, seed=seed, faults=parse_faults(faults),
        embedded=embedded, postgres_url=postgres_url or DEFAULT_POSTGRES_URL,
        rabbitmq_url=rabbitmq_url or DEFAULT_RABBITMQ_URL, sla=sla, settle_timeout=settle_timeout,
        private_postgres=postgres_url is None, private_rabbitmq=rabbitmq_url is None)
    directory = log_dir or Path(tempfile.mkdtemp(prefix="payrelay-chaos-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with exit_on_failure("chaos"):
            report = run_on_loop(run_chaos(options, directory))
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:
        Console(stderr=True).print(f"payrelay chaos: interrupted; logs in {directory}")
        raise typer.Exit(130) from exc
    _show(report, as_json=as_json, directory=directory, keep=log_dir is not None)
    if not report.ok:
        raise typer.Exit(ExitCode.VIOLATED)


def _show(report: ChaosReport, *, as_json: bool, directory: Path, keep: bool) -> None:
    """Print the report; the logs go unless asked for or needed (a failed run)."""
    console = Console()
    if as_json:
        console.print_json(json.dumps(report.to_json()))
    else:
        report.render(console)
    if not keep and report.ok:
        shutil.rmtree(directory, ignore_errors=True)
    elif not as_json:
        console.print(f"logs: {directory}", highlight=False)
