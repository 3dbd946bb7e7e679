"""The `payrelay` command."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console

from payrelay.entrypoints.demo import DemoOptions, FaultProfile, run_demo

app = typer.Typer(help="payrelay: gateway-confirmed payments reach the order system exactly once.",
                  no_args_is_help=True)


@app.command()
def demo(
    orders: int = typer.Option(200, min=1, help="How many orders the customers pay."),
    seed: int = typer.Option(7, help="Seed for customers and faults: same seed, same run."),
    faults: FaultProfile = typer.Option(FaultProfile.DEFAULT, help="What goes wrong."),
    data_dir: Path | None = typer.Option(None, help="Keep the databases here (default: temp)."),
) -> None:
    """Run everything in one process and print a consistency report."""
    console = Console()
    report = asyncio.run(
        run_demo(DemoOptions(orders=orders, seed=seed, faults=faults, data_dir=data_dir), console)
    )
    report.render(console)
    if not report.ok:
        console.print("[red]an invariant failed[/red]")
        raise typer.Exit(1)


@app.command()
def simulator(
    port: int = typer.Option(8089, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
) -> None:
    """Run the MercadoPago-compatible gateway simulator."""
    from payrelay.config import Settings
    from payrelay.simulator.server import run_simulator

    settings = Settings()
    run_simulator(
        host,
        port,
        access_token=settings.gateway_access_token.get_secret_value(),
        webhook_secret=settings.webhook_secret_list()[0],
    )


def main() -> None:
    app()
