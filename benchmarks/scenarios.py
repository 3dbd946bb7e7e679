"""The scenarios: ingest alone, and webhook -> order PAID end to end, per backend."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.deployments import EMBEDDED, Deployment, backend_env, deployed
from benchmarks.harness import (
    PAYRELAY,
    SECRET,
    TOKEN,
    children,
    free_port,
    http_summary,
    load,
    migrate,
    percentiles_ms,
    wait_port_file,
    wait_ready,
)


@dataclass(frozen=True)
class Plan:
    """How big each step is: the full run, or `--quick`."""

    rates: tuple[float, ...] = (100, 300, 1000)
    step_seconds: float = 10.0
    saturation_count: int = 3000
    warmup: int = 100
    concurrency: int = 64
    ceiling_seconds: float = 10.0
    drain_timeout: float = 40.0
    stall_timeout: float = 10.0


QUICK = Plan(rates=(40,), step_seconds=1.5, saturation_count=60, warmup=10,
             ceiling_seconds=1.5, drain_timeout=20.0)


# -- ingest alone ------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def intake(backend: str, work_dir: Path, *, postgres_url: str, rabbitmq_url: str
                 ) -> AsyncIterator[str]:
    """Only the payments API on `backend`, in its own process: its public URL."""
    async with backend_env(backend, work_dir, postgres_url=postgres_url,
                           rabbitmq_url=rabbitmq_url) as storage:
        env = {**storage, "PAYRELAY_WEBHOOK_SECRETS": SECRET,
               "PAYRELAY_GATEWAY_ACCESS_TOKEN": TOKEN}
        async with children(env, work_dir) as procs:
            if backend == EMBEDDED:
                port_file = work_dir / "ingest.port"
                procs.start("ingest", [PAYRELAY[0], "-m", "benchmarks.ingest_server",
                                       str(work_dir), str(port_file)])
                port = await wait_port_file(port_file, procs)
            else:
                await migrate(env)
                port = free_port()
                procs.start("ingest", [*PAYRELAY, "serve", "--role", "payments-api",
                                       "--payments-port", str(port),
                                       "--payments-internal-port", str(free_port())])
            url = f"http://127.0.0.1:{port}"
            await wait_ready([f"{url}/readyz"], procs)
            yield url


async def ingest(backend: str, work_dir: Path, plan: Plan, **servers: str) -> dict[str, Any]:
    """Webhooks/s answered at saturation, and p50/p99 at each offered rate."""
    ids = (str(2 * 10**12 + i) for i in range(10**9))
    async with intake(backend, work_dir, **servers) as url:
        await load(url, [next(ids) for _ in range(plan.warmup)], rate=0)
        saturation = http_summary(await load(
            url, [next(ids) for _ in range(plan.saturation_count)], rate=0,
            concurrency=plan.concurrency))
        at_rate = {}
        for rate in plan.rates:
            batch = [next(ids) for _ in range(int(rate * plan.step_seconds))]
            at_rate[str(int(rate))] = http_summary(await load(url, batch, rate=rate))
    return {"saturation": saturation, "at_rate": at_rate}


# -- end to end --------------------------------------------------------------------------

async def drain(deployment: Deployment, expected: int, plan: Plan) -> bool:
    """Wait until `expected` orders are paid, or progress stalls, or the timeout passes."""
    deadline = time.monotonic() + plan.drain_timeout
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        paid = await deployment.paid_count()
        if paid >= expected:
            return True
        if paid != last:
            last, last_change = paid, time.monotonic()
        elif time.monotonic() - last_change > plan.stall_timeout:
            return False
        await asyncio.sleep(0.25)
    return False


async def step(deployment: Deployment, count: int, *, rate: float, plan: Plan,
               expected_before: int) -> dict[str, Any]:
    """One load step: `count` webhooks, each for a payment whose order waits; PAID measured."""
    pairs = await deployment.seed(count)
    sent = await load(deployment.payments_url, [p for _, p in pairs], rate=rate,
                      concurrency=plan.concurrency)
    drained = await drain(deployment, expected_before + count, plan)
    paid_at = await deployment.paid_at([o for o, _ in pairs])
    latencies = [paid_at[o].timestamp() - sent_at
                 for (o, _), sent_at in zip(pairs, sent["sent_at"], strict=True) if o in paid_at]
    last = max((p.timestamp() for p in paid_at.values()), default=None)
    span = last - sent["started_at"] if last else None
    return {
        "offered_per_s": rate or None, "webhooks": count, "paid": len(paid_at),
        "drained": drained,
        "paid_per_s": round(len(paid_at) / span, 1) if span else None,
        "webhook_answers": http_summary(sent),
        **percentiles_ms(latencies),
    }


async def end_to_end(backend: str, work_dir: Path, plan: Plan, **servers: str
                     ) -> dict[str, Any]:
    """Warm up, saturate (PAID/s draining a burst), then the offered-rate ladder."""
    async with deployed(backend, work_dir, **servers) as deployment:
        total = plan.warmup
        warm = await step(deployment, plan.warmup, rate=0, plan=plan, expected_before=0)
        if not warm["drained"]:
            raise RuntimeError(f"{backend}: the warm-up payments never got PAID: logs in "
                               f"{work_dir}")
        saturation = await step(deployment, plan.saturation_count, rate=0, plan=plan,
                                expected_before=total)
        total += plan.saturation_count
        capacity = saturation["paid_per_s"] or 0.0
        steps: dict[str, Any] = {}
        backlog = not saturation["drained"]
        for rate in plan.rates:
            if backlog:
                steps[str(int(rate))] = {"skipped": "an earlier step left payments unpaid"}
                continue
            if rate > 2 * capacity:
                steps[str(int(rate))] = {
                    "skipped": f"offered {rate:g}/s is over twice the measured saturation "
                               f"({capacity:g} PAID/s): it would only time a growing backlog"}
                continue
            count = int(rate * plan.step_seconds)
            steps[str(int(rate))] = await step(deployment, count, rate=rate, plan=plan,
                                               expected_before=total)
            total += count
            backlog = not steps[str(int(rate))]["drained"]
    return {"processes": deployment.processes, "saturation": saturation, "at_rate": steps}
