"""`payrelay trace`, `payrelay status` and `payrelay refunds …`: support's questions, answered.

"I paid but my order says pending" is `payrelay trace <order id>`: every step both
databases recorded, the gateway's failures and the next try included. Everything heavy
(bootstrap, the databases, Rich tables) is imported inside the commands, so `payrelay
--help` stays fast. Each command reads through `Operations`, as the `/admin` endpoints do.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    from payrelay.ports import Operations, PipelineStatus, Trace

__all__ = ["register"]

T = TypeVar("T")


def register(app: typer.Typer) -> None:
    """Add `trace`, `status` and the `refunds` group to the `payrelay` command."""
    app.command("trace")(trace)
    app.command("status")(status)
    refunds = typer.Typer(help="Refunds held for a person: list, release, dismiss.",
                          no_args_is_help=True)
    refunds.command("list")(refunds_list)
    refunds.command("release")(refunds_release)
    refunds.command("dismiss")(refunds_dismiss)
    app.add_typer(refunds, name="refunds")


def _with_operations(name: str, action: Callable[[Operations], Awaitable[T]]) -> T:
    from payrelay.bootstrap import open_operations, utc_now
    from payrelay.config import Settings
    from payrelay.entrypoints.event_loop import run as run_on_loop
    from payrelay.entrypoints.exits import exit_on_failure

    async def run() -> T:
        settings = Settings()
        async with open_operations(
            settings.payments_database_url, settings.orders_database_url, clock=utc_now,
            interval=settings.heartbeat_interval_seconds,
        ) as operations:
            return await action(operations)

    with exit_on_failure(name):
        return run_on_loop(run())


def _print_json(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2))


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(2)  # an id that names nothing: a person must act (exits.py)


def trace(
    record_id: str = typer.Argument(..., metavar="ORDER_OR_PAYMENT_ID"),
    as_json: bool = typer.Option(False, "--json", help="Print the trace as JSON."),
) -> None:
    """Everything recorded about an order or a payment, both sides, in time order."""
    from payrelay.entrypoints.ops_json import trace_json

    found = _with_operations("trace", lambda ops: ops.trace(record_id))
    if not found.found:
        raise _fail(f"nothing is recorded for order or payment {record_id}")
    if as_json:
        _print_json(trace_json(found))
        return
    _render_trace(found)


def _render_trace(found: Trace) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"orders {', '.join(found.order_ids) or '-'}; "
                        f"payments {', '.join(found.payment_ids) or '-'}")
    for column in ("at", "side", "step", "payment", "detail"):
        table.add_column(column)
    for s in found.steps:
        style = "red" if "failed" in s.kind or "gave_up" in s.kind or "dead" in s.kind else None
        table.add_row(s.at.isoformat(timespec="milliseconds"), s.side, s.kind,
                      s.payment_id or "", s.detail, style=style)
    Console().print(table)


def status(
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """The pipeline's backlog at each stage, dead letters, refunds and worker heartbeats."""
    from payrelay.entrypoints.ops_json import status_json

    current = _with_operations("status", lambda ops: ops.status())
    if as_json:
        _print_json(status_json(current))
        return
    _render_status(current)


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"oldest {seconds:.1f} s"


def _render_status(s: PipelineStatus) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="payrelay status")
    table.add_column("stage")
    table.add_column("count", justify="right")
    table.add_column("detail")
    rows = [
        ("notifications waiting", s.notifications_waiting.count,
         _age(s.notifications_waiting.oldest_age_seconds)),
        ("notifications retrying", s.notifications_retrying, s.last_notification_error or ""),
        ("notifications dead", s.notifications_dead, ""),
        ("payments outbox", s.payments_outbox.count, _age(s.payments_outbox.oldest_age_seconds)),
        ("orders outbox", s.orders_outbox.count, _age(s.orders_outbox.oldest_age_seconds)),
        ("retrying", s.retrying, ""), ("dead letters", s.dead_letters, "payrelay dlq list"),
        ("approved, not applied", s.unapplied_approvals.count,
         _age(s.unapplied_approvals.oldest_age_seconds)),
        ("reconciler findings", s.reconciler_findings, "last run " + (
            s.reconciler_last_run_at.isoformat(timespec="seconds")
            if s.reconciler_last_run_at else "never")),
        ("refunds pending", s.refunds_pending, ""),
        ("refunds held", s.refunds_held, "payrelay refunds list"),
    ]
    for stage, count, detail in rows:
        table.add_row(stage, str(count), detail)
    for w in s.workers:
        table.add_row(f"worker {w.name}", "up" if w.up else "DOWN",
                      f"{','.join(w.roles)}; last beat {w.last_beat_at.isoformat()}",
                      style=None if w.up else "red")
    Console().print(table)


def refunds_list(
    as_json: bool = typer.Option(False, "--json", help="Print them as JSON."),
) -> None:
    """Refunds held for a person (unknown order, amount mismatch, refused by the gateway)."""
    from payrelay.entrypoints.ops_json import held_refund_json

    held = _with_operations("refunds", lambda ops: ops.held_refunds())
    if as_json:
        _print_json([held_refund_json(r) for r in held])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(held)} held refunds")
    for column in ("id", "order", "amount", "reason", "held at"):
        table.add_column(column)
    for r in held:
        table.add_row(r.refund_id, r.order_id, str(r.amount), r.reason,
                      r.held_at.isoformat(timespec="seconds"))
    Console().print(table)


def refunds_release(refund_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Send a held refund to the refunder, which issues it once."""
    from payrelay.ports import UnknownRefund

    async def release(ops: Operations) -> bool:
        try:
            await ops.release_refund(refund_id)
        except UnknownRefund:
            return False
        return True

    if not _with_operations("refunds", release):
        raise _fail(f"no held refund {refund_id}")
    typer.echo(f"released {refund_id}: the refunder issues it")


def refunds_dismiss(
    refund_id: str = typer.Argument(..., metavar="ID"),
    reason: str = typer.Option(..., "--reason", help="Why it is not refunded (recorded)."),
) -> None:
    """Close a held refund without refunding it, recording why."""
    from payrelay.ports import UnknownRefund

    if not reason.strip():
        raise typer.BadParameter("give a reason", param_hint="--reason")

    async def dismiss(ops: Operations) -> bool:
        try:
            await ops.dismiss_refund(refund_id, reason)
        except UnknownRefund:
            return False
        return True

    if not _with_operations("refunds", dismiss):
        raise _fail(f"no held refund {refund_id}")
    typer.echo(f"dismissed {refund_id}")
