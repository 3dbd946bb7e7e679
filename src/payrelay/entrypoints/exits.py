"""Exit codes of the commands, so that a supervisor can tell "retry" from "a person must act".

    0  done
    1  UNREACHABLE  the database or the broker cannot be reached: start again later
    2  MUST_ACT     a setting is wrong (a database that refuses the URL's database, role
                    or password too), a schema is behind, an argument names nothing
    3  VIOLATED     `payrelay chaos` ran, and its checker found an invariant broken

A failure is reported as one line on stderr, never a traceback, and never a URL or a secret:
payrelay's own errors are written without them, and settings errors are shown by field.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import IntEnum

import typer
from pydantic import ValidationError

from payrelay.domain.errors import (
    Conflict,
    NotFound,
    SchemaBehind,
    StorageRefused,
    StorageUnavailable,
    TransportUnavailable,
)

__all__ = ["ExitCode", "exit_code_for", "exit_on_failure", "one_line_reason"]


class ExitCode(IntEnum):
    OK = 0
    UNREACHABLE = 1
    """A database or the broker did not answer: nothing is wrong with this process, retry."""
    MUST_ACT = 2
    """Retrying cannot help: fix a setting, run `payrelay migrate`, or name an existing id."""
    VIOLATED = 3
    """The command ran to its end and what it checked does not hold (`payrelay chaos`)."""


def exit_code_for(exc: BaseException) -> ExitCode | None:
    """The exit code for a failure a command can explain; None for a bug (keep its traceback)."""
    if isinstance(exc, SchemaBehind | StorageRefused):  # StorageUnavailable, but no retry heals
        return ExitCode.MUST_ACT
    if isinstance(exc, StorageUnavailable | TransportUnavailable):
        return ExitCode.UNREACHABLE
    if isinstance(exc, ValueError | NotFound | Conflict):  # ValidationError is a ValueError
        return ExitCode.MUST_ACT
    return None


def one_line_reason(exc: BaseException) -> str:
    """What went wrong, on one line; a settings error names the variables, not their values."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"PAYRELAY_{'.'.join(map(str, error['loc'])).upper()}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
    return " ".join(str(exc).split()) or type(exc).__name__


@contextlib.contextmanager
def exit_on_failure(command: str) -> Iterator[None]:
    """Turn a failure `exit_code_for` knows into its exit code and one line on stderr."""
    try:
        yield
    except Exception as exc:
        code = exit_code_for(exc)
        if code is None:
            raise
        typer.echo(f"payrelay {command}: {one_line_reason(exc)}", err=True)
        raise typer.Exit(code) from exc
