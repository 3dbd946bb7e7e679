"""Exit codes of the commands that connect: 1 means "unreachable, try again", 2 "a person must act".

Each failure is one line on stderr, without a traceback and without the secrets it was given.
A server that answers but refuses the URL (no such database or role) is a person's to fix: 2.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from payrelay.entrypoints.cli import app

PASSWORD = "s3cret-pw"
COMMANDS = [["serve"], ["reconcile", "--once"], ["dlq", "list"], ["migrate"], ["status"]]


def closed_port() -> int:
    """A local port nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable_databases() -> dict[str, str]:
    url = f"postgresql+asyncpg://payrelay:{PASSWORD}@127.0.0.1:{closed_port()}/payrelay"
    return {"PAYRELAY_PAYMENTS_DATABASE_URL": url, "PAYRELAY_ORDERS_DATABASE_URL": url}


def unmigrated_databases(directory: Path) -> dict[str, str]:
    return {
        "PAYRELAY_PAYMENTS_DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'payments.db'}",
        "PAYRELAY_ORDERS_DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'orders.db'}",
    }


def run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Exit code and stderr of `payrelay <args>`, run in this process."""
    if args[0] == "serve":  # should it start after all, it must not take a fixed port
        args = [*args, "--payments-port", "0", "--orders-port", "0"]
    result = CliRunner().invoke(app, args, env=env)
    assert isinstance(result.exception, SystemExit | None), result.exception
    return result.exit_code, result.stderr


def assert_one_clean_line(stderr: str, command: str) -> None:
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith(f"payrelay {command}: ")
    assert "Traceback" not in stderr
    assert PASSWORD not in stderr


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ./payrelay.toml and no ./var of the repository's."""
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
def test_an_unreachable_database_exits_1(args: list[str]):
    code, stderr = run(args, unreachable_databases())
    assert code == 1
    assert_one_clean_line(stderr, args[0])
    assert "unreachable" in stderr


@pytest.mark.parametrize("args", COMMANDS[:3], ids=lambda a: " ".join(a))
def test_an_unmigrated_database_exits_2(args: list[str], tmp_path: Path):
    code, stderr = run(args, unmigrated_databases(tmp_path))
    assert code == 2
    assert_one_clean_line(stderr, args[0])
    assert "run `payrelay migrate`" in stderr


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("PAYRELAY_IPN_WINDOW_SECONDS", "0", "PAYRELAY_IPN_WINDOW_SECONDS"),
        ("PAYRELAY_CONSUMER_RETRY_DELAYS", "soon", "PAYRELAY_CONSUMER_RETRY_DELAYS"),
        ("PAYRELAY_PAYMENTS_DATABASE_URL", f"postgres://u:{PASSWORD}@db/x", "database URL"),
        ("PAYRELAY_PAYMENTS_DATABASE_URL", f"not a url {PASSWORD}", "database URL"),
    ],
)
def test_a_bad_setting_exits_2(args: list[str], setting: str, value: str, named: str,
                               tmp_path: Path):
    code, stderr = run(args, {**unmigrated_databases(tmp_path), setting: value})
    assert code == 2
    assert_one_clean_line(stderr, args[0])
    assert named in stderr


@pytest.mark.postgres
@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
@pytest.mark.parametrize("change", ["database", "username"])
def test_a_database_server_refusing_the_url_exits_2(args: list[str], change: str,
                                                    postgres_url: str):
    wrong = make_url(postgres_url).set(**{change: f"payrelay_missing_{uuid.uuid4().hex[:8]}"})
    url = wrong.render_as_string(hide_password=False)
    code, stderr = run(args, {"PAYRELAY_PAYMENTS_DATABASE_URL": url,
                              "PAYRELAY_ORDERS_DATABASE_URL": url})
    assert code == 2
    assert_one_clean_line(stderr, args[0])
    assert "the database refuses payrelay" in stderr


def test_a_bad_role_exits_2():
    code, stderr = run(["serve", "--role", "cashier"], {})
    assert code == 2
    assert "cashier" in stderr


def test_serve_as_a_process_exits_1_with_one_line_when_the_database_is_down(tmp_path: Path):
    env = {**os.environ, **unreachable_databases()}
    done = subprocess.run(
        [sys.executable, "-m", "payrelay", "serve", "--payments-port", "0", "--orders-port", "0"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert_one_clean_line(done.stderr, "serve")


# --- the configuration file, and the fix in the line (issue 12) ---------------------------

@pytest.mark.parametrize("args", [["config"], *COMMANDS], ids=lambda a: " ".join(a))
@pytest.mark.parametrize(
    ("toml", "named"),
    [("ipn_window_seconds = \n", "./payrelay.toml is not valid TOML"),
     ('ipn_windw_seconds = 5\n', "unknown setting 'ipn_windw_seconds' in ./payrelay.toml"),
     ('ipn_window_seconds = "soon"\n', "PAYRELAY_IPN_WINDOW_SECONDS")],
    ids=["not-toml", "misspelt-key", "bad-value"],
)
def test_a_bad_payrelay_toml_exits_2_with_one_line(args: list[str], toml: str, named: str,
                                                   tmp_path: Path):
    (tmp_path / "payrelay.toml").write_text(toml)
    code, stderr = run(args, unmigrated_databases(tmp_path))
    assert code == 2
    assert_one_clean_line(stderr, args[0])
    assert named in stderr
    assert "fix" in stderr


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
def test_an_unreachable_database_line_says_what_to_do(args: list[str]):
    _, stderr = run(args, unreachable_databases())
    assert "start the database server, or correct PAYRELAY_PAYMENTS_DATABASE_URL" in stderr


def test_dlq_list_json_is_the_admin_endpoints_fields(tmp_path: Path):
    env = unmigrated_databases(tmp_path)
    assert run(["migrate"], env)[0] == 0
    asyncio.run(add_orders_dead_letter(env["PAYRELAY_ORDERS_DATABASE_URL"]))
    result = CliRunner().invoke(app, ["dlq", "list", "--json"], env=env)
    assert result.exit_code == 0, result.output
    (letter,) = json.loads(result.stdout)
    assert letter["id"] == "orders-1" and letter["routing_key"] == "payment.approved"
    assert letter["reason"] == "consumer retries exhausted" and letter["attempts"] == 3


async def add_orders_dead_letter(url: str) -> None:
    from payrelay.adapters.storage import tables as t
    from payrelay.adapters.storage.database import Database
    from payrelay.adapters.storage.messages import SqlDeadLetters
    from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION
    from payrelay.ports import Delivery

    db = Database(url)
    delivery = Delivery(message_id=str(uuid.uuid4()), routing_key="payment.approved",
                        body=b"{}", headers={"x-payrelay-attempts": "3"})
    try:
        async with db.transaction() as conn:
            await SqlDeadLetters(conn, t.orders_dead_letters).add(
                delivery, subscription=ORDER_SIDE_SUBSCRIPTION,
                reason="consumer retries exhausted", error="boom", at=datetime.now(UTC))
    finally:
        await db.dispose()
