"""`payrelay contract`: write or check the published message contract (docs/contract/)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console


def contract(
    directory: Path = typer.Argument(Path("docs/contract"), help="Where the documents live."),
    write: bool = typer.Option(False, "--write", help="Regenerate the documents there."),
    check: bool = typer.Option(False, "--check", help="Exit 1 if they differ from the code."),
) -> None:
    """The JSON Schemas and AsyncAPI document of payrelay's messages, from the code."""
    from payrelay.contract import REGENERATE, drift, generate_documents, write_documents

    console = Console()
    if write == check:
        raise typer.BadParameter("give exactly one of --write or --check")
    if write:
        for path in write_documents(directory, generate_documents()):
            console.print(f"wrote {path}", highlight=False)
        return
    problems = drift(directory)
    for problem in problems:
        Console(stderr=True).print(problem, highlight=False, soft_wrap=True)
    if problems:
        Console(stderr=True).print(f"run `{REGENERATE}`", highlight=False)
        raise typer.Exit(1)
    console.print(f"{directory} matches the code")
