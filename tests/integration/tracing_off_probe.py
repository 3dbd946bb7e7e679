"""Run one payment through the embedded stack with tracing off, on its own interpreter,
and print (JSON) what OpenTelemetry was imported and called for it.

`python -m tests.integration.tracing_off_probe`, from the repository root; read by
test_tracing.py. A process of its own, because pytest's has the SDK imported by the tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from payrelay.entrypoints.embedded import embedded_settings, run_embedded
from tests.support import FAST, Customer


def otel_modules() -> list[str]:
    return sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")


def otel_roots() -> tuple[str, ...]:
    """The directories OpenTelemetry's code lives in (a namespace package)."""
    otel = sys.modules.get("opentelemetry")
    return tuple(os.path.abspath(p) + os.sep for p in (otel.__path__ if otel else []))


async def main() -> dict[str, Any]:
    imported_before = otel_modules()  # what FastAPI's own import brought (opentelemetry-api)
    roots = otel_roots()
    callers: set[str] = set()  # files outside OpenTelemetry that called into it

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(roots):
            caller = frame.f_back
            if caller is not None and not caller.f_code.co_filename.startswith(roots):
                callers.add(caller.f_code.co_filename)

    with tempfile.TemporaryDirectory() as data:
        settings = embedded_settings(Path(data), **FAST)
        async with (run_embedded(settings, approve_delay=0.05) as stack,
                    httpx.AsyncClient(timeout=10) as http):
            customer = Customer(stack, http)
            order_id = await customer.order("13.00")
            sys.setprofile(profile)  # the event loop's thread: every service runs on it
            try:
                await customer.pay(await customer.checkout(order_id))
                await customer.wait_until_status(order_id, "paid")
                outcomes = stack.system.payments.outcomes.stats
                while outcomes.consumed < 1:  # the reply recorded on the payments side
                    await asyncio.sleep(0.02)
            finally:
                sys.setprofile(None)
    return {
        "otel": settings.otel,
        "imported_before": imported_before,
        "imported_after": otel_modules(),
        "payrelay_tracing": sorted(m for m in sys.modules
                                   if m.startswith("payrelay.adapters.tracing.")),
        "callers": sorted(callers),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
