"""The `payrelay` command.

`payrelay --help`, any command's `--help` and `payrelay config` import nothing heavy: no
sqlalchemy, fastapi, aio_pika, alembic, aiohttp, httpx or uvicorn (the stack costs 1.5 s of
imports). Each command imports what it runs inside its own function, and a test
(tests/unit/test_cli_imports.py) fails if a top-level import brings one back. A failure a
person can act on is one line and an exit code (entrypoints/exits.py), never a traceback.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from payrelay.entrypoints import dlq_commands, ops_commands
from payrelay.entrypoints.chaos_command import chaos
from payrelay.entrypoints.contract_command import contract
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

    from payrelay.system import Role

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
    from payrelay.entrypoints.demo import DemoOptions, run_demo
    from payrelay.entrypoints.logs import configure_logging

    configure_logging("error")  # injected faults are expected, not news
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
app.command()(contract)


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
def migrate(
    side: str = typer.Option(
        "both", help="payments, orders or both: whose database to migrate. A shop running "
        "its own order service has no orders database: --side payments (or leave "
        "PAYRELAY_ORDERS_DATABASE_URL empty)."
    ),
) -> None:
    """Create or upgrade the databases' schemas to this version."""
    from payrelay.bootstrap import Side
    from payrelay.bootstrap import migrate as run_migrations
    from payrelay.config import Settings

    try:
        sides = set(Side) if side == "both" else {Side(side)}
    except ValueError as exc:
        raise typer.BadParameter("payments, orders or both", param_hint="--side") from exc
    with exit_on_failure("migrate"):
        done = run_on_loop(run_migrations(Settings(), sides=sides, explicit=side != "both"))
    names = " and ".join(s.value for s in Side if s in done)
    _console().print(f"{names} database{'s are' if len(done) > 1 else ' is'} at the current "
                     "schema")
    if Side.ORDERS in sides - done:
        _console().print("no orders database (PAYRELAY_ORDERS_DATABASE_URL is empty): skipped")


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
    metrics_port: int | None = typer.Option(
        None, help="Also serve /healthz, /readyz and /metrics here (a worker-only process's "
        "one listener; default: PAYRELAY_METRICS_PORT, else none)."
    ),
) -> None:
    """Run the chosen roles in this process until SIGTERM/SIGINT."""
    from payrelay.config import Settings
    from payrelay.entrypoints.logs import configure_logging
    from payrelay.entrypoints.serve import serve as run

    configure_logging("info")  # business events (order paid, refunds) are INFO
    roles = _roles(role)
    # Exit 1 when a database or the broker is unreachable (the supervisor restarts it), 2 when
    # a person must act (a setting, the schema): see entrypoints/exits.py.
    with exit_on_failure("serve"):
        run_on_loop(run(
            Settings(), roles, host=host, payments_port=payments_port,
            orders_port=orders_port, payments_internal_port=payments_internal_port,
            payments_internal_host=payments_internal_host, metrics_port=metrics_port,
        ))


def _roles(names: list[str]) -> set[Role]:
    from payrelay.bootstrap import Role

    try:
        return set(Role) if "all" in names else {Role(r) for r in names}
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--role") from exc


# trace, status, refunds: that module keeps its heavy imports inside its commands too.
ops_commands.register(app)
dlq_commands.register(app)


def main() -> None:
    app()
