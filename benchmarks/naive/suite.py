"""The naive pattern's scenarios: a healthy order service, a slow one, and one down 30 s.

Each runs on a stack of its own (`stack.py`), warmed up first, at `plan.naive_rate`
webhooks/s (100/s, as payrelay's 100/s step) for `plan.step_seconds`. In the outage
scenario the order service is killed a quarter of `step_seconds` in and the load lasts
`naive_down_seconds` plus half `step_seconds`, so it is down in the middle of the load and
meets some load after its restart.
After the gateway has given up or got its 2xx for every webhook, the orders database is
read until it stops changing (a backlog still being applied) or `drain_timeout` passes:
then the orders still pending and the orders updated twice are counted.

Webhook latency is the gateway's wait for the first delivery of each webhook, from its
due time, whatever the answer: a 500 after the RPC timeout is an answer the gateway waited
5 s for, and dropping it would hide exactly what the naive pattern costs.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.harness import SECRET, load, percentiles_ms
from benchmarks.naive.stack import NaiveStack, Tally, naive_stack
from benchmarks.scenarios import Plan

__all__ = ["SCENARIOS", "OrderSide", "naive_scenario"]

QUIET_SECONDS = 1.0
"""How long the orders must stay unchanged for the naive side to count as settled."""


class OrderSide(StrEnum):
    HEALTHY = "healthy"
    """The order service answers in milliseconds."""
    SLOW = "slow"
    """Every UPDATE on orders takes 200 ms more (`benchmarks/slow_orders.py`): with a pool
    of 10 connections the order service does 50 updates/s at most."""
    DOWN = "down"
    """SIGKILLed mid-load with the messages it holds, started again 30 s later."""


async def deliver(url: str, payment_ids: list[str], plan: Plan) -> dict[str, Any]:
    """Run the retrying gateway (`sender.py`) in its own process: its result."""
    with tempfile.TemporaryDirectory(prefix="payrelay-bench-") as tmp:
        spec, result = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec.write_text(json.dumps({"url": url, "secret": SECRET, "rate": plan.naive_rate,
                                    "retry_after": list(plan.naive_retry_after),
                                    "payment_ids": payment_ids}))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.naive.sender", str(spec), str(result))
        if await proc.wait() != 0:
            raise RuntimeError("the naive sender failed")
        sent: dict[str, Any] = json.loads(result.read_text())
        return sent


async def outage(stack: NaiveStack, *, after: float, seconds: float) -> dict[str, float]:
    """Kill the order service `after` seconds in, start it `seconds` later: when (epoch s)."""
    await asyncio.sleep(after)
    killed_at = time.time()
    await stack.kill_order_service()
    await asyncio.sleep(seconds)
    restarted_at = time.time()
    await stack.restart_order_service()
    return {"killed_at": killed_at, "restarted_at": restarted_at,
            "consuming_at": time.time()}


async def settle(stack: NaiveStack, order_ids: list[str], *, timeout: float
                 ) -> tuple[Tally, bool, float]:
    """The tally once it stops changing, or at `timeout`: (tally, settled, seconds waited)."""
    began = time.monotonic()
    last, quiet_since = await stack.tally(order_ids), time.monotonic()
    while time.monotonic() - quiet_since < QUIET_SECONDS:
        if time.monotonic() - began > timeout:
            return last, False, round(time.monotonic() - began, 2)
        await asyncio.sleep(0.25)
        now = await stack.tally(order_ids)
        if now != last:
            last, quiet_since = now, time.monotonic()
    return last, True, round(time.monotonic() - began, 2)


def answers(sent: dict[str, Any]) -> dict[str, Any]:
    """What the gateway saw: first deliveries' statuses and latency, retries, give-ups."""
    firsts = [attempts[0] for attempts in sent["attempts"]]
    statuses: dict[str, int] = {}
    for _, _, status in firsts:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    ok = [a for a in sent["attempts"] if 200 <= a[-1][2] < 300]
    return {
        "webhook_answers": {"sent": len(firsts), "statuses": statuses,
                            **percentiles_ms([latency for _, latency, _ in firsts])},
        "deliveries": sum(len(a) for a in sent["attempts"]),
        "retried": sum(1 for a in sent["attempts"] if len(a) > 1),
        "gave_up": len(sent["attempts"]) - len(ok),
    }


async def warm_up(stack: NaiveStack, plan: Plan) -> None:
    pairs = await stack.deployment.seed(plan.warmup)
    warm = await load(stack.webhooks_url, [p for _, p in pairs], rate=0,
                      concurrency=plan.warmup)
    if any(status != 200 for status in warm["status"]):
        raise RuntimeError(f"naive warm-up webhooks not all taken: {warm['status']}")


def outcome(sent: dict[str, Any], tally: Tally) -> dict[str, Any]:
    """What the gateway saw beside what the orders database says."""
    deliveries = sum(len(a) for a in sent["attempts"])
    return {
        **answers(sent), **tally.as_dict(),
        # A delivery that led to no UPDATE: its message died in the killed order service
        # (no-ack: the broker forgot it on delivery), or it never reached the broker.
        "deliveries_not_applied": max(0, deliveries - tally.updates),
    }


async def naive_scenario(side: OrderSide, work_dir: Path, plan: Plan, *, postgres_url: str,
                         rabbitmq_url: str) -> dict[str, Any]:
    """One scenario on a stack of its own: what the gateway saw, what the orders say."""
    slow = plan.naive_slow_update_seconds if side is OrderSide.SLOW else 0.0
    down = plan.naive_down_seconds if side is OrderSide.DOWN else 0.0
    seconds = plan.step_seconds / 2 + down if down else plan.step_seconds
    began = time.monotonic()
    async with naive_stack(work_dir, postgres_url=postgres_url, rabbitmq_url=rabbitmq_url,
                           rpc_timeout=plan.naive_rpc_timeout,
                           slow_update_seconds=slow) as stack:
        await warm_up(stack, plan)
        pairs = await stack.deployment.seed(int(plan.naive_rate * seconds))
        fault = (asyncio.create_task(outage(stack, after=plan.step_seconds / 4, seconds=down))
                 if down else None)
        try:
            sent = await deliver(stack.webhooks_url, [p for _, p in pairs], plan)
            times = await fault if fault else {}
        finally:
            if fault:  # the sender failed: no restart into a stack being torn down
                fault.cancel()
        tally, settled, waited = await settle(stack, [o for o, _ in pairs],
                                              timeout=plan.drain_timeout)
    return {
        "order_service": {"slow_update_s": slow, "down_s": down, **{
            k.replace("_at", "_after_start_s"): round(v - sent["started_at"], 2)
            for k, v in times.items()}},
        "offered_per_s": plan.naive_rate, "webhooks": len(pairs),
        "rpc_timeout_s": plan.naive_rpc_timeout, "retry_after_s": list(plan.naive_retry_after),
        **outcome(sent, tally), "settled": settled, "settle_waited_s": waited,
        "settle_timeout_s": plan.drain_timeout, "wall_s": round(time.monotonic() - began, 1),
    }


SCENARIOS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    side.value: partial(naive_scenario, side) for side in OrderSide
}
"""What `python -m benchmarks` runs as `results["naive"][name]`, each with (work_dir, plan,
postgres_url=, rabbitmq_url=)."""
