"""`payrelay demo`: simulated customers pay orders through the whole pipeline, then a report.

Everything runs in this process on the embedded default: two SQLite files, the in-process
transport, the bundled gateway simulator, and both HTTP APIs on loopback ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from payrelay.bootstrap import delete_broker_topology, scratch_databases
from payrelay.domain.events import EventType
from payrelay.domain.payment import PaymentStatus
from payrelay.domain.work import RefundStatus
from payrelay.entrypoints.demo_customers import Plan, run_customers
from payrelay.entrypoints.demo_options import (
    DEFAULT_POSTGRES_URL,
    DEFAULT_RABBITMQ_URL,
    Backend,
    FaultProfile,
)
from payrelay.entrypoints.embedded import EmbeddedStack, embedded_settings, run_embedded
from payrelay.entrypoints.report import Report, build_report
from payrelay.faults import FaultPoint, Faults
from payrelay.simulator.faults import SimulatorFaults

# What each simulated customer does (see demo_customers.Plan), with its weight.
SCENARIOS: dict[FaultProfile, tuple[tuple[Plan, int], ...]] = {
    FaultProfile.DEFAULT: (
        (("approve",), 78),
        (("approve", "approve"), 6),  # pays twice: the second payment must be refunded
        (("reject", "approve"), 6),
        (("pending_then_approve",), 6),
        (("reject",), 4),  # gives up: the order stays pending
    ),
    FaultProfile.HEAVY: (
        (("approve",), 48),
        # Pays again after the reconciler searched the order, and that webhook is lost:
        # only the sweep finds the second payment, which must be refunded once.
        (("approve", "reconciled", "approve_unnotified"), 8),
        (("approve", "approve"), 10),
        (("reject", "approve"), 6),
        (("pending_then_approve",), 6),
        (("cancel", "approve"), 8),  # pays a cancelled order: refunded
        (("expire", "approve"), 8),  # pays an expired order: refunded
        (("reject",), 6),
    ),
}
SCENARIOS[FaultProfile.NONE] = SCENARIOS[FaultProfile.DEFAULT]

# Payrelay's own fault points fired at random under --faults heavy.
HEAVY_FAULTS: dict[FaultPoint, float] = {
    FaultPoint.WEBHOOK_AFTER_RECORD: 0.03,
    FaultPoint.PROCESSOR_BEFORE_COMMIT: 0.03,
    FaultPoint.RELAY_AFTER_PUBLISH: 0.03,
    FaultPoint.ORDER_CONSUMER_BEFORE_COMMIT: 0.05,  # the order database failing
    FaultPoint.ORDER_CONSUMER_AFTER_COMMIT: 0.03,  # crash between commit and ack
    FaultPoint.OUTCOME_CONSUMER_BEFORE_COMMIT: 0.03,
    FaultPoint.REFUND_ANSWER_LOST: 0.2,
}
HEAVY_SETTINGS: dict[str, Any] = {
    "order_expiry_seconds": 6.0,
    "reconcile_interval_seconds": 0.5,
    "reconcile_checkout_age_seconds": 1.0,
    "reconcile_outcome_sla_seconds": 3.0,
    "reconcile_unsettled_age_seconds": 2.0,
}


@dataclass(frozen=True, slots=True)
class DemoOptions:
    orders: int = 200
    seed: int = 7
    faults: FaultProfile = FaultProfile.DEFAULT
    data_dir: Path | None = None
    settle_timeout: float = 120.0
    backend: Backend = Backend.EMBEDDED
    postgres_url: str = DEFAULT_POSTGRES_URL
    rabbitmq_url: str = DEFAULT_RABBITMQ_URL


def simulator_faults(profile: FaultProfile, seed: int) -> SimulatorFaults:
    if profile is FaultProfile.NONE:
        return SimulatorFaults(seed=seed)
    if profile is FaultProfile.HEAVY:
        return SimulatorFaults(
            seed=seed, duplicate_rate=0.3, delay_max=0.3, reorder=True, drop_rate=0.1,
            api_error_rate=0.05,
        )
    return SimulatorFaults(
        seed=seed, duplicate_rate=0.3, delay_max=0.3, reorder=True, api_error_rate=0.02
    )


def payrelay_faults(profile: FaultProfile, seed: int) -> Faults:
    faults = Faults(random.Random(seed))
    if profile is FaultProfile.HEAVY:
        for point, probability in HEAVY_FAULTS.items():
            faults.arm(point, times=None, probability=probability)
    return faults


async def run_demo(options: DemoOptions, console: Console) -> Report:
    async with contextlib.AsyncExitStack() as resources:
        tmp = resources.enter_context(tempfile.TemporaryDirectory(prefix="payrelay-demo-"))
        data_dir = options.data_dir or Path(tmp)
        if data_dir.exists() and any(data_dir.iterdir()):
            # The simulator starts from an empty ledger: old rows would contradict it.
            raise ValueError(f"--data-dir {data_dir} is not empty: the demo needs a fresh one")
        overrides = await _backend_settings(options, resources)
        if options.faults is FaultProfile.HEAVY:
            overrides |= HEAVY_SETTINGS
        faults = payrelay_faults(options.faults, options.seed)
        async with run_embedded(
            embedded_settings(data_dir, **overrides),
            simulator_faults=simulator_faults(options.faults, options.seed),
            faults=faults,
            seed=options.seed,
        ) as stack:
            return await _run(stack, options, console, faults)
    raise AssertionError("unreachable")


async def _backend_settings(
    options: DemoOptions, resources: contextlib.AsyncExitStack
) -> dict[str, Any]:
    """The demo's settings for its backend; scratch databases and queues go with `resources`."""
    overrides: dict[str, Any] = {"retry_base_seconds": 0.1, "retry_cap_seconds": 2.0}
    if options.backend is not Backend.POSTGRES_RABBITMQ:
        return overrides
    payments_url, orders_url = await resources.enter_async_context(
        scratch_databases(options.postgres_url, ["payrelay_demo"] * 2)
    )
    prefix = f"payrelay-demo-{uuid.uuid4().hex[:8]}."
    # Scratch queues go when the run ends, whatever happened (registered first, so it runs
    # after the system has closed its connection).
    resources.push_async_callback(delete_broker_topology, options.rabbitmq_url, prefix)
    return overrides | {
        "payments_database_url": payments_url,
        "orders_database_url": orders_url,
        "broker_url": options.rabbitmq_url,
        "broker_name_prefix": prefix,
    }


async def _run(
    stack: EmbeddedStack, options: DemoOptions, console: Console, faults: Faults
) -> Report:
    """The customers, then the wait for everything to settle, then the report."""
    rng = random.Random(options.seed)
    scenarios = SCENARIOS[options.faults]
    plans = [
        rng.choices([s for s, _ in scenarios], weights=[w for _, w in scenarios])[0]
        for _ in range(options.orders)
    ]
    started = time.perf_counter()
    await run_customers(stack, plans, console)
    moving = await _settle(stack, options.settle_timeout)
    elapsed = time.perf_counter() - started
    faults.disarm()  # the report reads the databases; no more injected failures
    report = await build_report(stack, orders_created=options.orders)
    report.figures.append(("wall time", f"{elapsed:.1f} s"))
    if moving:
        still = ", ".join(f"{what}: {count}" for what, count in moving.items())
        report.figures.append(
            ("settled", f"NO after {options.settle_timeout:.0f} s; still moving: {still}")
        )
    report.figures.insert(0, ("backend", options.backend.value))
    return report


async def _settle(stack: EmbeddedStack, timeout: float) -> dict[str, int]:
    """Wait until the gateway has nothing in flight and payrelay has nothing left to do.

    Both are read together, in one loop, and must stay quiet for a few reads in a row: a
    webhook the simulator sends after a refund, or a retried delivery, can arrive after
    payrelay's backlog looked empty. Returns what was still moving ({} once settled).
    """
    loop = asyncio.get_running_loop()
    deadline, quiet = loop.time() + timeout, 0
    while True:
        moving = await _still_moving(stack)
        quiet = 0 if moving else quiet + 1
        if quiet >= 3:
            return {}
        if loop.time() >= deadline:
            return moving
        await asyncio.sleep(0.1)


async def _still_moving(stack: EmbeddedStack) -> dict[str, int]:
    """What is still on its way, by where it waits (only the non-zero counts)."""
    payments, orders = stack.system.payments.reads, stack.system.orders.reads
    backlog, rows = await payments.backlog(), await payments.payment_rows()
    applied = [r.order_id for r in rows if r.order_outcome == EventType.ORDER_PAYMENT_APPLIED]
    known = {r.payment_id: r.status for r in rows}
    gateway = stack.simulator.search_payments(limit=1_000_000)["results"]
    moving = {
        "gateway deliveries and approvals in flight": stack.simulator.in_flight,
        "notifications waiting": backlog.notifications_waiting,
        "payment events in the outbox": backlog.outbox_pending,
        "outcomes in the orders outbox": await orders.outbox_pending(),
        "approvals without the order side's answer": sum(
            1 for r in rows if r.status == PaymentStatus.APPROVED and r.order_outcome is None),
        "a displaced keeper's answer en route": len(applied) - len(set(applied)),
        "refunds requested": (await payments.refund_counts()).get(RefundStatus.REQUESTED, 0),
        "gateway payments payrelay has not caught up with": sum(
            1 for g in gateway if known.get(str(g["id"])) != g["status"]),
    }
    return {what: count for what, count in moving.items() if count}
