"""Exit codes of the commands, so that a supervisor can tell "retry" from "a person must act".

    0  done
    1  UNREACHABLE  the database or the broker cannot be reached: start again later
    2  MUST_ACT     a setting is wrong (a database that refuses the URL's database, role
                    or password too), a schema is behind, an argument names nothing
    3  VIOLATED     `payrelay chaos` ran, and its checker found an invariant broken

A failure is reported as one line on stderr, never a traceback, and never a URL or a secret:
payrelay's own errors are written without them, and settings errors are shown by field. The
line says the cause, then the fix ("start it, or correct PAYRELAY_PAYMENTS_DATABASE_URL";
"run `payrelay migrate`"; "fix ./payrelay.toml"). pydantic is imported only once a settings
error exists, so that `payrelay --help` stays light (see entrypoints/cli.py).
"""

from __future__ import annotations

import contextlib
import tomllib
from collections.abc import Iterator
from enum import IntEnum

import typer

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


SETTINGS_FIX = "fix it in the environment or ./payrelay.toml"
DATABASE_FIX = ("start the database server, or correct PAYRELAY_PAYMENTS_DATABASE_URL / "
                "PAYRELAY_ORDERS_DATABASE_URL")
REFUSED_FIX = ("correct the database name, role or password in "
               "PAYRELAY_PAYMENTS_DATABASE_URL / PAYRELAY_ORDERS_DATABASE_URL")
BROKER_FIX = "start the broker, or correct PAYRELAY_TRANSPORT"


def one_line_reason(exc: BaseException) -> str:
    """What went wrong and what to do, on one line; a settings error names the variables, not
    their values."""
    from pydantic import ValidationError  # loaded already if this is one

    if isinstance(exc, tomllib.TOMLDecodeError):
        return f"./payrelay.toml is not valid TOML ({exc}): fix the file"
    if isinstance(exc, ValidationError):
        return "; ".join(
            _setting_error(error["type"], error["loc"], error["msg"])
            for error in exc.errors(include_input=False, include_url=False)
        ) + f": {SETTINGS_FIX}"
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, SchemaBehind) or "payrelay migrate" in reason:
        return reason  # says its own fix
    if isinstance(exc, StorageRefused):
        return f"{reason}: {REFUSED_FIX}"
    if isinstance(exc, StorageUnavailable):
        return f"{reason}: {DATABASE_FIX}"
    if isinstance(exc, TransportUnavailable):
        return f"{reason}: {BROKER_FIX}"
    return reason


def _setting_error(kind: str, loc: tuple[int | str, ...], message: str) -> str:
    name = ".".join(map(str, loc))
    if kind == "extra_forbidden":  # only a file (or an argument) can name an unknown setting
        return f"unknown setting {name!r} in ./payrelay.toml (misspelt?)"
    return f"PAYRELAY_{name.upper()}: {message}"


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
