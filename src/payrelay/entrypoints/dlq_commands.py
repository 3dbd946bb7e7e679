"""`payrelay dlq …`: dead letters, listed, shown, replayed and purged (light imports)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import typer

from payrelay.entrypoints.event_loop import run as run_on_loop
from payrelay.entrypoints.exits import exit_on_failure

if TYPE_CHECKING:
    from rich.console import Console

    from payrelay.ports import DeadLetterBox

__all__ = ["register"]

T = TypeVar("T")

dlq = typer.Typer(help="Dead letters: messages no consumer could apply.", no_args_is_help=True)


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


def _console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr)


def register(app: typer.Typer) -> None:
    app.add_typer(dlq, name="dlq")
