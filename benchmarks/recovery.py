"""Recovery scenarios (issue 10): a backlog drain, a slow order side, and kill -9 under load.

Each runs on `postgres+rabbitmq` with the roles as separate processes (SPLIT_ROLES), on a
deployment of its own, warmed up first. PAID is timed when a reader can see it, at the
commit (paid_watch.py), not by `paid_at`, which these scenarios make misleading.

- `backlog_drain`: the consumer process (order-consumer + outcome-consumer) gets SIGTERM,
  a graceful stop as in a deploy or an outage of the order side. Load goes on for
  `consumer_stop_seconds`; once every payment event is in the broker, the process starts
  again with the same arguments. Drain rate: the backlog over the time from that restart
  (the process's start-up included) until every order is PAID.
- `slow_orders`: every UPDATE statement on the orders table costs 200 ms (slow_orders.py
  has the model and why it is per statement); load at `slow_order_rate` for
  `step_seconds`; PAID/s and webhook -> PAID p50/p99.
- `kill_9`: under load at `recovery_rate`, SIGKILL the processor and the consumer process
  mid-load and start each again at once, as a supervisor would. Time from the kill until
  every order whose webhook was sent before it is PAID (the target: within 5 s), and until
  every order is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from benchmarks.deployments import POSTGRES_RABBITMQ, Deployment, deployed
from benchmarks.harness import http_summary, load
from benchmarks.paid_watch import PaidWatch, watching
from benchmarks.scenarios import Plan, censored_percentiles, step
from benchmarks.slow_orders import slow_order_updates
from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database

__all__ = ["SCENARIOS", "backlog_drain", "kill_9", "slow_orders"]

CONSUMER, PROCESSOR = "order-consumer", "processor"
Prepare = Callable[[Deployment], Awaitable[None]]


@contextlib.asynccontextmanager
async def warmed(work_dir: Path, plan: Plan, servers: dict[str, str],
                 prepare: Prepare | None = None) -> AsyncIterator[Deployment]:
    """A split deployment in a directory of its own, `prepare`d, then warmed up."""
    own_dir = Path(tempfile.mkdtemp(prefix="recovery-", dir=work_dir))
    async with deployed(POSTGRES_RABBITMQ, own_dir, **servers) as deployment:
        if prepare is not None:
            await prepare(deployment)
        warm = await step(deployment, plan.warmup, rate=0, plan=plan)
        if not warm["drained"]:
            raise RuntimeError(f"warm-up payments not PAID within {plan.drain_timeout}s")
        yield deployment


def timed(pairs: list[tuple[str, str]], sent: dict[str, Any], watch: PaidWatch, *,
          drained: bool, ended: float) -> dict[str, Any]:
    """PAID/s from the first webhook's due time to `ended`, and webhook -> PAID p50/p99."""
    ids = [o for o, _ in pairs]
    latencies = [watch.seen[o] - at for o, at in zip(ids, sent["sent_at"], strict=True)
                 if o in watch.seen]
    span = ended - sent["started_at"]
    return {
        "webhooks": len(pairs), "paid": len(latencies), "drained": drained,
        "unpaid_at_cutoff": len(pairs) - len(latencies),
        "paid_per_s": round(len(latencies) / span, 1) if span > 0 else None,
        "webhook_answers": http_summary(sent),
        **censored_percentiles(latencies, len(pairs) - len(latencies)),
    }


def serving_after(deployment: Deployment, role: str, since: float) -> float | None:
    """Seconds from `since` (epoch) until the latest run of `role`'s process logged that it
    serves (`payrelay serve` logs "serving roles" once its workers run), None if not yet.

    Read from the log line's own `timestamp` (a JSON line off a TTY, UTC), not polled.
    """
    log = deployment.procs.log_dir / f"{deployment.process_of(role)}.log"
    lines = [line for line in log.read_text(errors="replace").splitlines()
             if "serving roles" in line]
    try:
        stamp = datetime.fromisoformat(json.loads(lines[-1])["timestamp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None
    logged = stamp.timestamp()
    return round(logged - since, 2) if logged >= since else None


async def wait_drained(watch: PaidWatch, ids: list[str], timeout: float
                       ) -> tuple[bool, float]:
    """Whether all of `ids` got PAID within `timeout`, and when the window ended (epoch s):
    the last one seen if all were, else the cutoff itself."""
    drained = await watch.until(ids, cutoff=time.monotonic() + timeout)
    last = watch.last(ids)
    return drained, (last if drained and last is not None else time.time())


# -- backlog drain -----------------------------------------------------------------------

async def relayed(deployment: Deployment, expected: int, *, timeout: float) -> bool:
    """Wait until `expected` payment events are confirmed by the broker (the outbox sent)."""
    db = Database(deployment.env["PAYRELAY_PAYMENTS_DATABASE_URL"])
    query = (select(func.count()).select_from(t.payments_outbox)
             .where(t.payments_outbox.c.status == "sent"))
    cutoff = time.monotonic() + timeout
    try:
        while True:
            async with db.read() as conn:
                if (await conn.execute(query)).scalar_one() >= expected:
                    return True
            if time.monotonic() > cutoff:
                return False
            await asyncio.sleep(0.25)
    finally:
        await db.dispose()


async def backlog_drain(work_dir: Path, plan: Plan, **servers: str) -> dict[str, Any]:
    """Consumers stopped under load, then started again: how fast the backlog drains."""
    async with warmed(work_dir, plan, servers) as deployment:
        consumer = deployment.process_of(CONSUMER)
        pairs = await deployment.seed(int(plan.recovery_rate * plan.consumer_stop_seconds))
        ids = [o for o, _ in pairs]
        exit_code = await deployment.procs.stop(consumer, signal.SIGTERM)
        stopped = time.monotonic()
        sent = await load(deployment.payments_url, [p for _, p in pairs],
                          rate=plan.recovery_rate, concurrency=plan.concurrency)
        in_broker = await relayed(deployment, plan.warmup + len(pairs),
                                  timeout=plan.drain_timeout)
        async with watching(deployment.orders_db) as watch:
            backlog = len(ids) - sum(o in watch.seen for o in ids)
            restarted_at, stopped_s = time.time(), time.monotonic() - stopped
            deployment.procs.restart(consumer)
            drained, ended = await wait_drained(watch, ids, plan.backlog_drain_timeout)
            first = min((watch.seen[o] for o in ids if o in watch.seen), default=None)
        deployment.procs.check_alive()
        serving = serving_after(deployment, CONSUMER, restarted_at)
    drain_s = ended - restarted_at
    return {
        "stop_signal": "SIGTERM", "consumer_exit_code": exit_code,
        "offered_per_s": plan.recovery_rate, "stopped_s": round(stopped_s, 2),
        "all_in_broker_before_restart": in_broker, "backlog": backlog,
        "drain_s": round(drain_s, 2),
        "drain_events_per_s": round(backlog / drain_s, 1) if drained and drain_s > 0 else None,
        "serving_after_restart_s": serving,
        # The same backlog over the time once the process served: without its start-up,
        # which swings with the machine's load more than the drain does.
        "drain_events_per_s_once_serving": (
            round(backlog / (drain_s - serving), 1)
            if drained and serving is not None and drain_s > serving else None),
        "first_paid_after_restart_s": round(first - restarted_at, 2) if first else None,
        **timed(pairs, sent, watch, drained=drained, ended=ended),
    }


# -- a slow order side -------------------------------------------------------------------

async def slow_orders(work_dir: Path, plan: Plan, **servers: str) -> dict[str, Any]:
    """Every UPDATE statement on orders costs `slow_order_seconds`: PAID/s and latency."""
    async def slow_down(deployment: Deployment) -> None:
        await slow_order_updates(deployment.env["PAYRELAY_ORDERS_DATABASE_URL"],
                                 plan.slow_order_seconds)

    async with warmed(work_dir, plan, servers, slow_down) as deployment:
        count = int(plan.slow_order_rate * plan.step_seconds)
        pairs = await deployment.seed(count)
        ids = [o for o, _ in pairs]
        async with watching(deployment.orders_db) as watch:
            sent = await load(deployment.payments_url, [p for _, p in pairs],
                              rate=plan.slow_order_rate, concurrency=plan.concurrency)
            drained, ended = await wait_drained(watch, ids, plan.drain_timeout)
    return {
        "model": f"every UPDATE statement on orders sleeps {plan.slow_order_seconds} s "
                 "(statement-level trigger), whatever its row count",
        "update_cost_s": plan.slow_order_seconds, "offered_per_s": plan.slow_order_rate,
        "cutoff_after_last_send_s": plan.drain_timeout,
        **timed(pairs, sent, watch, drained=drained, ended=ended),
    }


# -- kill -9 -----------------------------------------------------------------------------

async def kill_mid_load(deployment: Deployment, watch: PaidWatch, ids: list[str],
                        plan: Plan) -> float:
    """Half a step after the first of `ids` is PAID (the pipeline is flowing), SIGKILL the
    processor and the consumer process and start each again at once: when (epoch s)."""
    await watch.until(ids[:1], cutoff=time.monotonic() + plan.drain_timeout)
    await asyncio.sleep(plan.step_seconds / 2)
    await watch.poll()  # so an order seen PAID after the kill was not PAID at the kill
    killed_at = time.time()
    for role in (PROCESSOR, CONSUMER):
        name = deployment.process_of(role)
        await deployment.procs.stop(name, signal.SIGKILL)
        deployment.procs.restart(name)
    return killed_at


async def kill_9(work_dir: Path, plan: Plan, **servers: str) -> dict[str, Any]:
    """kill -9 of the processor and the consumer mid-load: how soon all are PAID again."""
    async with warmed(work_dir, plan, servers) as deployment:
        pairs = await deployment.seed(int(plan.recovery_rate * plan.step_seconds))
        ids = [o for o, _ in pairs]
        async with watching(deployment.orders_db) as watch:
            sent, killed_at = await asyncio.gather(
                load(deployment.payments_url, [p for _, p in pairs],
                     rate=plan.recovery_rate, concurrency=plan.concurrency),
                kill_mid_load(deployment, watch, ids, plan))
            drained, ended = await wait_drained(watch, ids, plan.drain_timeout)
        deployment.procs.check_alive()
        serving = {role: serving_after(deployment, role, killed_at)
                   for role in (PROCESSOR, CONSUMER)}
    return {"killed": [PROCESSOR, CONSUMER], "offered_per_s": plan.recovery_rate,
            "restarted_serving_after_s": serving,
            **after_kill(ids, sent, watch, killed_at, drained=drained),
            **timed(pairs, sent, watch, drained=drained, ended=ended)}


def after_kill(ids: list[str], sent: dict[str, Any], watch: PaidWatch, killed_at: float, *,
               drained: bool) -> dict[str, Any]:
    """How long after the kill the orders sent before it, and then all of them, were PAID."""
    before = [o for o, at in zip(ids, sent["sent_at"], strict=True) if at <= killed_at]
    unpaid_then = [o for o in before if watch.seen.get(o, killed_at + 1) > killed_at]
    last_before = watch.last(before)
    all_before = all(o in watch.seen for o in before)
    last = watch.last(ids)
    # The last of them shows when the dead processor's leases ran out and its claimed
    # notifications went through; `restarted_serving_after_s`, how long the restart took.
    first_again = min((watch.seen[o] for o in unpaid_then if o in watch.seen), default=None)
    return {
        "killed_after_load_start_s": round(killed_at - sent["started_at"], 2),
        "sent_before_kill": len(before), "unpaid_at_kill": len(unpaid_then),
        "first_of_them_paid_after_s": (
            round(first_again - killed_at, 2) if first_again else None),
        "sent_before_kill_all_paid_after_s": (
            round(last_before - killed_at, 2) if all_before and last_before else None),
        "all_paid_after_kill_s": round(last - killed_at, 2) if drained and last else None,
    }


SCENARIOS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "backlog_drain": backlog_drain, "slow_orders": slow_orders, "kill_9": kill_9}
"""The `recovery` section of the results, in the order the bench runs them."""
