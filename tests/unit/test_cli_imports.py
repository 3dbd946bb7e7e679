"""`payrelay --help`, every command's `--help` and `payrelay config` import none of the
heavy stack (issue 12: `--help` took 2-3 s): checked on `sys.modules` in a fresh
interpreter, not with a timer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("sqlalchemy", "fastapi", "aio_pika", "aiormq", "alembic", "aiohttp", "httpx",
         "uvicorn", "starlette", "asyncpg", "aiosqlite", "jinja2")

PROBE = """
import json, sys
from payrelay.entrypoints.cli import app
try:
    app(sys.argv[1:], prog_name="payrelay")
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {heavy})), file=sys.stderr)
"""

LIGHT = [["--help"], ["config"], ["dlq", "list", "--help"], ["serve", "--help"],
         ["demo", "--help"], ["chaos", "--help"], ["reconcile", "--help"]]


@pytest.mark.parametrize("args", LIGHT, ids=" ".join)
def test_a_light_command_imports_nothing_heavy(args: list[str], tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=set(HEAVY)), *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    imported = json.loads(done.stderr.strip().splitlines()[-1])
    assert imported == [], f"payrelay {' '.join(args)} imported {imported}"
    assert done.stdout.strip(), done.stderr  # it did answer


def test_the_probe_sees_a_heavy_import(tmp_path):
    """The check above can fail: a command that connects does import the stack."""
    env_db = "sqlite+aiosqlite:///" + str(tmp_path / "p.db")
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=set(HEAVY)), "dlq", "list"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "PAYRELAY_PAYMENTS_DATABASE_URL": env_db,
             "PAYRELAY_ORDERS_DATABASE_URL": env_db},
    )
    assert "sqlalchemy" in json.loads(done.stderr.strip().splitlines()[-1])
