"""Schemathesis against both APIs' own OpenAPI documents: no request gets a server error.

The embedded stack serves the payments API (with admin, under a token the run is given) and
the orders API on loopback ports; the schemathesis CLI runs in a subprocess against each
document while this test's event loop serves the requests. Its examples, coverage (boundary
and negative values) and fuzzing phases send valid and invalid input alike. Both databases
and the gateway simulator are up, so no answer may be 5xx: a documented 503 or 502 means a
dependency is down, and here none is.

Bounded: a fixed seed, a fixed number of examples per operation, one worker, and a hard
timeout per document (10-15 s each on the 2-core CI machine). For a longer hunt, set
PAYRELAY_SCHEMATHESIS_EXAMPLES and PAYRELAY_SCHEMATHESIS_SEED.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import StackFactory

TOKEN = "schemathesis-admin-token"
MAX_EXAMPLES = int(os.environ.get("PAYRELAY_SCHEMATHESIS_EXAMPLES", "100"))
SEED = os.environ.get("PAYRELAY_SCHEMATHESIS_SEED", "20240801")
TIMEOUT_SECONDS = 150.0 * max(1, MAX_EXAMPLES // 100)
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


async def run_schemathesis(schema_url: str, *extra: str, cwd: Path) -> tuple[int, str]:
    """Exit code and output of one `schemathesis run` that checks only for server errors."""
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "run", schema_url,
        "--checks", "not_a_server_error",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", SEED,
        "--workers", "1",
        "--request-timeout", "10",
        "--generation-database", "none",  # leave no example store behind
        "--suppress-health-check", "all",
        "--no-color",
        *extra,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            output, _ = await process.communicate()
    except BaseException:  # timed out or cancelled: leave no process behind
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_no_request_to_either_api_gets_a_server_error(
    make_stack: StackFactory, http: httpx.AsyncClient, tmp_path: Path
):
    async with make_stack(admin_token=TOKEN) as stack:
        service = stack.settings.service_token.get_secret_value()
        internal = stack.payments_internal_url
        # One Authorization header per run: the admin routes with the admin token, then
        # /checkout with the service token (each run also meets the other routes' 401s).
        for name, url, extra in [
            ("payments (admin token)", internal, ("--header", f"Authorization: Bearer {TOKEN}")),
            ("payments (service token)", internal,
             ("--header", f"Authorization: Bearer {service}")),
            ("orders", stack.orders_url, ()),
        ]:
            document = await http.get(f"{url}/openapi.json")
            assert document.status_code == 200
            started = time.monotonic()
            code, output = await run_schemathesis(f"{url}/openapi.json", *extra, cwd=tmp_path)
            took = time.monotonic() - started
            print(f"schemathesis on the {name} API: exit {code} in {took:.1f}s\n{output}")
            assert code == 0, f"{name} API:\n{output}"
            generated = re.search(r"(\d+) generated, (\d+) passed", output)
            assert generated, output  # the run really tested something
            assert int(generated[1]) > 100 and generated[1] == generated[2], output
