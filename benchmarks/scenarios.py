"""The scenarios: ingest alone, and webhook -> order PAID end to end, per backend."""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
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

    rates: tuple[float, ...] = (30, 100, 300, 1000)
    step_seconds: float = 10.0
    saturation_count: int = 1500
    warmup: int = 20
    concurrency: int = 64
    ceiling_seconds: float = 10.0
    drain_timeout: float = 15.0
    """How long after the last webhook a step waits for PAID; later ones count as unpaid."""
    # The naive pattern side by side (benchmarks/naive): its load lasts step_seconds, plus
    # the down period in the scenario where the order service is killed and restarted.
    naive_rate: float = 100.0
    naive_down_seconds: float = 30.0
    naive_slow_update_seconds: float = 0.2
    naive_rpc_timeout: float = 5.0
    """What the webhook handler waits for the order service's answer (an RxJS timeout())."""
    naive_retry_after: tuple[float, ...] = (2.0, 5.0, 10.0)
    """The gateway's retry schedule after a failed delivery, MercadoPago's compressed."""


QUICK = Plan(rates=(20,), step_seconds=1.5, saturation_count=40, warmup=5,
             ceiling_seconds=1.5, drain_timeout=20.0, naive_rate=20.0,
             naive_down_seconds=3.0, naive_rpc_timeout=1.0, naive_retry_after=(0.5, 1.0, 2.0))


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

async def drain(deployment: Deployment, expected: int, *, cutoff: float) -> bool:
    """Wait until `expected` orders are paid, or the monotonic `cutoff` passes."""
    while time.monotonic() < cutoff:
        if await deployment.paid_count() >= expected:
            return True
        await asyncio.sleep(0.25)
    return await deployment.paid_count() >= expected


def censored_percentiles(latencies: list[float], unpaid: int) -> dict[str, float | None]:
    """p50/p99 counting each unpaid order as slower than any: None where one of them lands."""
    cuts = percentiles_ms([*latencies, *[math.inf] * unpaid])
    return {k: None if v is None or math.isinf(v) else v for k, v in cuts.items()}


async def step(deployment: Deployment, count: int, *, rate: float, plan: Plan,
               expected_before: int = 0) -> dict[str, Any]:
    """`count` webhooks, each for a payment whose order waits; how fast orders got PAID."""
    pairs = await deployment.seed(count)
    sent = await load(deployment.payments_url, [p for _, p in pairs], rate=rate,
                      concurrency=plan.concurrency)
    drained = await drain(deployment, expected_before + count,
                          cutoff=time.monotonic() + plan.drain_timeout)
    paid_at = await deployment.paid_at([o for o, _ in pairs])
    latencies = [paid_at[o].timestamp() - sent_at
                 for (o, _), sent_at in zip(pairs, sent["sent_at"], strict=True) if o in paid_at]
    last = max((p.timestamp() for p in paid_at.values()), default=None)
    span = last - sent["started_at"] if last else None
    return {
        "offered_per_s": rate or None, "webhooks": count, "paid": len(paid_at),
        "drained": drained, "unpaid_at_cutoff": count - len(paid_at),
        "cutoff_after_last_send_s": plan.drain_timeout,
        "paid_per_s": round(len(paid_at) / span, 1) if span else None,
        "webhook_answers": http_summary(sent),
        **censored_percentiles(latencies, count - len(paid_at)),
    }


async def fresh_step(backend: str, work_dir: Path, plan: Plan, *, count: int, rate: float,
                     servers: dict[str, str]) -> dict[str, Any]:
    """One step on a deployment of its own, warmed up first, so no backlog carries over.

    Its own directory too: a fresh simulator numbers payments from 1000000001 again, and
    would meet the previous step's payments in a reused SQLite file.
    """
    own_dir = Path(tempfile.mkdtemp(prefix="step-", dir=work_dir))
    async with deployed(backend, own_dir, **servers) as deployment:
        warm = await step(deployment, plan.warmup, rate=0, plan=plan)
        if not warm["drained"]:
            raise RuntimeError(f"{backend}: warm-up payments not PAID within "
                               f"{plan.drain_timeout}s")
        measured = await step(deployment, count, rate=rate, plan=plan,
                              expected_before=plan.warmup)
        return {"processes": deployment.processes, **measured}


async def end_to_end(backend: str, work_dir: Path, plan: Plan, **servers: str
                     ) -> dict[str, Any]:
    """Saturation (PAID/s while a burst drains), then each offered rate, each afresh."""
    saturation = await fresh_step(backend, work_dir, plan, count=plan.saturation_count,
                                  rate=0, servers=servers)
    steps = {}
    for rate in plan.rates:
        steps[str(int(rate))] = await fresh_step(
            backend, work_dir, plan, count=int(rate * plan.step_seconds), rate=rate,
            servers=servers)
    return {"processes": saturation["processes"], "saturation": saturation, "at_rate": steps}
