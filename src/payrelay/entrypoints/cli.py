"""The `payrelay` command.

`payrelay --help`, any command's `--help` and `payrelay config` import nothing heavy: no
sqlalchemy, fastapi, aio_pika, alembic, aiohttp, httpx or uvicorn (the stack costs 1.5 s of
imports). Each command imports what it runs inside its own function, and a test
(tests/unit/test_cli_imports.py) fails if a top-level import brings one back. A failure a
person can act on is one line and an exit code (entrypoints/exits.py), never a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import typer

from payrelay.entrypoints.chaos_command import chaos
from payrelay.entrypoints.demo_options import (
    DEFAULT_POSTGRES_URL,
    DEFAULT_RABBITMQ_URL,
    Backend,
    FaultProfile,
)
from payrelay.entrypoints.event_loop import run as run_on_loop
from payrelay.entrypoints.exits import exit_on_failure, one_line_reason

if TYPE_CHECKING:
    from rich.console import Console

    from payrelay.ports import DeadLetterBox

T = TypeVar("T")

app = typer.Typer(help="payrelay: gateway-confirmed payments reach the order system exactly once.",
                  no_args_is_help=True)


@app.command()
def demo(
    orders: int = typer.Option(200, min=1, help="How many orders the customers pay."),
    seed: int = typer.Option(7, help="Seed for customers and faults: same seed, same run."),
    faults: FaultProfile = typer.Option(FaultProfile.DEFAULT, help="What goes wrong."),
    data_dir: Path | None = typer.Option(None, help="Keep the databases here (default: temp)."),
    backend: Backend = typer.Option(Backend.EMBEDDED, help="Where state and messages live."),
    postgres_url: str = typer.Option(
        DEFAULT_POSTGRES_URL, help="Server for scratch databases (postgres+rabbitmq)."
    ),
    rabbitmq_url: str = typer.Option(DEFAULT_RABBITMQ_URL, help="Broker (postgres+rabbitmq)."),
) -> None:
    """Run everything in one process and print a consistency report."""
    import logging

    from payrelay.entrypoints.demo import DemoOptions, run_demo

    logging.basicConfig(level=logging.ERROR)  # injected faults are expected, not news
    console = _console()
    options = DemoOptions(
        orders=orders, seed=seed, faults=faults, data_dir=data_dir, backend=backend,
        postgres_url=postgres_url, rabbitmq_url=rabbitmq_url,
    )
    try:
        report = run_on_loop(run_demo(options, console))
    except ValueError as exc:  # a bad option or setting: one line, as exits.py writes it
        typer.echo(f"payrelay demo: {one_line_reason(exc)}", err=True)
        raise typer.Exit(2) from exc
    report.render(console)
    if not report.ok:
        console.print("[red]an invariant failed[/red]")
        raise typer.Exit(1)


app.command()(chaos)


def _console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr)


@app.command()
def simulator(
    port: int = typer.Option(8089, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
) -> None:
    """Run the MercadoPago-compatible gateway simulator."""
    from payrelay.config import Settings
    from payrelay.simulator.server import run_simulator

    with exit_on_failure("simulator"):
        settings = Settings()
    run_simulator(
        host,
        port,
        access_token=settings.gateway_access_token.get_secret_value(),
        webhook_secret=settings.webhook_secret_list()[0],
    )


@app.command()
def migrate() -> None:
    """Create or upgrade both databases' schemas to this version."""
    from payrelay.bootstrap import migrate as run_migrations
    from payrelay.config import Settings

    with exit_on_failure("migrate"):
        run_on_loop(run_migrations(Settings()))
    _console().print("payments and orders databases are at the current schema")


@app.command()
def reconcile(
    once: bool = typer.Option(
        False, "--once", help="One run, then exit; without it, run every interval until Ctrl+C."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Find what fell through (unanswered approvals, lost webhooks, unsettled payments)."""
    import json

    from rich.table import Table

    from payrelay.bootstrap import Role, bootstrap
    from payrelay.config import Settings

    async def run() -> dict[str, object]:
        settings = Settings()
        system = await bootstrap(settings, check_schema=[Role.RECONCILER])
        try:
            while True:
                report = (await system.payments.reconciler.run_once()).to_json()
                if once:
                    return report
                _console().print_json(json.dumps(report))
                await asyncio.sleep(settings.reconcile_interval_seconds)
        finally:
            await system.close()

    with exit_on_failure("reconcile"):
        report = run_on_loop(run())
    console = _console()
    if as_json:
        console.print_json(json.dumps(report))
        return
    table = Table(title="reconciliation")
    table.add_column("check")
    table.add_column("result")
    for key, value in report.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        table.add_row(key.replace("_", " "), shown or "-")
    console.print(table)


@app.command()
def config() -> None:
    """Print the effective settings (environment, ./payrelay.toml, defaults), secrets masked."""
    from payrelay.config import Settings

    console = _console()
    with exit_on_failure("config"):
        settings = Settings()
    for name, value in settings.masked().items():
        console.print(f"PAYRELAY_{name.upper()}={value}", highlight=False)


@app.command()
def serve(
    role: list[str] = typer.Option(
        ["all"], help="payments-api, orders-api, processor, payments-relay, orders-relay, "
        "order-consumer, outcome-consumer, refunder, reconciler, order-expirer, or all; "
        "repeat to combine."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface the APIs bind."),
    payments_port: int = typer.Option(
        8000, help="Port of the payments API's public listener (webhooks, health)."
    ),
    orders_port: int = typer.Option(8001, help="Port of the orders API."),
    payments_internal_port: int = typer.Option(
        8002, help="Port of the payments API's internal listener (checkout, admin, docs)."
    ),
    payments_internal_host: str | None = typer.Option(
        None, help="Interface of the internal listener (default: --host), e.g. a private one."
    ),
) -> None:
    """Run the chosen roles in this process until SIGTERM/SIGINT."""
    import logging

    from payrelay.bootstrap import Role
    from payrelay.config import Settings
    from payrelay.entrypoints.serve import serve as run

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    try:
        roles = set(Role) if "all" in role else {Role(r) for r in role}
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--role") from exc
    # Exit 1 when a database or the broker is unreachable (the supervisor restarts it), 2 when
    # a person must act (a setting, the schema): see entrypoints/exits.py.
    with exit_on_failure("serve"):
        run_on_loop(
            run(
                Settings(), roles, host=host, payments_port=payments_port,
                orders_port=orders_port, payments_internal_port=payments_internal_port,
                payments_internal_host=payments_internal_host,
            )
        )


dlq = typer.Typer(help="Dead letters: messages no consumer could apply.", no_args_is_help=True)
app.add_typer(dlq, name="dlq")


def _with_box(action: Callable[[DeadLetterBox], Awaitable[T]]) -> T:
    from payrelay.bootstrap import dead_letter_box
    from payrelay.config import Settings

    async def run() -> T:
        async with dead_letter_box(Settings()) as box:
            return await action(box)

    with exit_on_failure("dlq"):
        return run_on_loop(run())


@dlq.command("list")
def dlq_list(
    limit: int = typer.Option(100, min=1, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print them as a JSON list."),
) -> None:
    """List dead letters of both databases."""
    import json

    from rich.table import Table

    from payrelay.entrypoints.admin_api import dead_letter_json

    letters = _with_box(lambda box: box.recent(limit=limit))
    if as_json:  # the same fields as GET /admin/dead-letters
        typer.echo(json.dumps([dead_letter_json(d) for d in letters], indent=2))
        return
    table = Table(title=f"{len(letters)} dead letters")
    for column in ("id", "routing key", "reason", "error", "attempts", "dead at"):
        table.add_column(column)
    for d in letters:
        table.add_row(d.id, d.routing_key or "", d.reason, (d.error or "")[:60],
                      str(d.attempts), d.dead_at.isoformat(timespec="seconds"))
    _console().print(table)


@dlq.command("show")
def dlq_show(dead_letter_id: str) -> None:
    """Show one dead letter, with its body."""
    import json

    from payrelay.entrypoints.admin_api import dead_letter_json

    letter = _with_box(lambda box: box.get(dead_letter_id))
    if letter is None:
        _console(stderr=True).print(f"[red]no dead letter {dead_letter_id}[/red]")
        raise typer.Exit(2)
    _console().print_json(json.dumps(dead_letter_json(letter, with_body=True)))


@dlq.command("replay")
def dlq_replay(
    ids: list[str] = typer.Argument(None, help="Dead letter ids, e.g. orders-3."),
    replay_all: bool = typer.Option(False, "--all", help="Replay every dead letter."),
) -> None:
    """Send dead letters again under their own message ids (idempotent)."""
    if not ids and not replay_all:
        raise typer.BadParameter("name ids, or --all")
    replayed = _with_box(lambda box: box.replay(None if replay_all else ids))
    _console().print(f"replayed {len(replayed)}: {', '.join(replayed)}")


@dlq.command("purge")
def dlq_purge(ids: list[str] = typer.Argument(..., help="Dead letter ids.")) -> None:
    """Delete dead letters for good."""
    purged = _with_box(lambda box: box.purge(ids))
    _console().print(f"purged {len(purged)}: {', '.join(purged)}")


# `ops_commands.register(app)` (trace, status, refunds: entrypoints/ops_commands.py) goes
# here, one call; that module must keep its own heavy imports inside its commands too.


def main() -> None:
    app()
