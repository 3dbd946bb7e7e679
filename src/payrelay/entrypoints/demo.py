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
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress

from payrelay.adapters.storage import queries
from payrelay.adapters.storage.provision import scratch_databases
from payrelay.adapters.transports.rabbitmq import RabbitMQTransport
from payrelay.entrypoints.embedded import EmbeddedStack, embedded_settings, run_embedded
from payrelay.entrypoints.report import Report, build_report
from payrelay.faults import FaultPoint, Faults
from payrelay.simulator.faults import SimulatorFaults


class Backend(StrEnum):
    EMBEDDED = "embedded"
    """Two SQLite files and the in-process transport: no servers."""
    POSTGRES_RABBITMQ = "postgres+rabbitmq"
    """Scratch PostgreSQL databases and uniquely named RabbitMQ queues, removed afterwards."""


class FaultProfile(StrEnum):
    NONE = "none"
    """A calm day: every notification arrives once, in order."""
    DEFAULT = "default"
    """Duplicate, delayed and reordered notifications, a few gateway 5xx answers."""
    HEAVY = "heavy"
    """All of the above, plus dropped notifications, order-database outages, consumer
    crashes between commit and ack, lost refund answers, and customers paying after
    cancellation or expiry."""


Plan = tuple[str, ...]
# What each simulated customer does, with its weight. "cancel" and "expire" are the
# customer's order being cancelled or expiring before the next step.
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


DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"


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
        overrides: dict[str, Any] = {"retry_base_seconds": 0.1, "retry_cap_seconds": 2.0}
        if options.backend is Backend.POSTGRES_RABBITMQ:
            payments_url, orders_url = await resources.enter_async_context(
                scratch_databases(options.postgres_url, ["payrelay_demo"] * 2)
            )
            prefix = f"payrelay-demo-{uuid.uuid4().hex[:8]}."
            overrides |= {
                "payments_database_url": payments_url,
                "orders_database_url": orders_url,
                "broker_url": options.rabbitmq_url,
                "broker_name_prefix": prefix,
            }
            # Scratch queues go when the run ends, whatever happened (registered first,
            # so it runs after the system has closed its connection).
            scratch = RabbitMQTransport(options.rabbitmq_url, name_prefix=prefix)
            resources.push_async_callback(scratch.delete_topology)
        if options.faults is FaultProfile.HEAVY:
            overrides |= HEAVY_SETTINGS
        settings = embedded_settings(data_dir, **overrides)
        faults = payrelay_faults(options.faults, options.seed)
        async with run_embedded(
            settings,
            simulator_faults=simulator_faults(options.faults, options.seed),
            faults=faults,
            seed=options.seed,
        ) as stack:
            started = time.perf_counter()
            await _customers(stack, options, console)
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
    raise AssertionError("unreachable")


async def _customers(stack: EmbeddedStack, options: DemoOptions, console: Console) -> None:
    rng = random.Random(options.seed)
    scenarios = SCENARIOS[options.faults]
    plans = [
        rng.choices([s for s, _ in scenarios], weights=[w for _, w in scenarios])[0]
        for _ in range(options.orders)
    ]
    limit = asyncio.Semaphore(32)
    async with httpx.AsyncClient(timeout=30) as http:
        with Progress(console=console, transient=False) as progress:
            task = progress.add_task("customers paying", total=options.orders)

            async def customer(index: int, plan: tuple[str, ...]) -> None:
                async with limit:
                    await _one_customer(http, stack, index, plan)
                progress.advance(task)

            await asyncio.gather(*(customer(i, plan) for i, plan in enumerate(plans)))


async def _one_customer(
    http: httpx.AsyncClient, stack: EmbeddedStack, index: int, plan: tuple[str, ...]
) -> None:
    price = Decimal(10 + index % 90) + Decimal("0.50")
    created = await http.post(
        f"{stack.orders_url}/orders",
        json={
            "items": [{"sku": f"SKU-{index % 17}", "quantity": 2, "unit_price": str(price)}],
            "total": str(price * 2),
            "currency": "BRL",
            "description": f"demo order {index}",
        },
    )
    created.raise_for_status()
    order_id = created.json()["order_id"]
    checkout = await _retrying(http, f"{stack.orders_url}/orders/{order_id}/checkout")
    preference_id = checkout["preference_id"]
    for step in plan:
        if step == "cancel":
            (await http.post(f"{stack.orders_url}/orders/{order_id}/cancel")).raise_for_status()
        elif step == "expire":
            await _until_expired(http, f"{stack.orders_url}/orders/{order_id}")
        elif step == "reconciled":
            await _until_reconciled(stack, order_id)
        else:
            pay_url = f"{stack.simulator_url}/simulator/preferences/{preference_id}/pay"
            outcome = step.removesuffix("_unnotified")
            body = {"outcome": outcome, "drop_notifications": step != outcome}
            (await http.post(pay_url, json=body)).raise_for_status()


async def _until_expired(http: httpx.AsyncClient, url: str) -> None:
    async with asyncio.timeout(60):
        while (await http.get(url)).json()["status"] != "expired":
            await asyncio.sleep(0.2)


async def _until_reconciled(stack: EmbeddedStack, order_id: str) -> None:
    """Until the reconciler has searched the gateway for this order's checkout."""
    async with asyncio.timeout(60):
        while not await queries.checkout_reconciled(stack.system.payments.db, order_id):
            await asyncio.sleep(0.2)


async def _retrying(http: httpx.AsyncClient, url: str) -> dict[str, str]:
    """A customer clicking "pay" again after the gateway hiccuped (checkout is idempotent)."""
    for attempt in range(10):
        response = await http.post(url)
        if response.status_code != 502:
            response.raise_for_status()
            result: dict[str, str] = response.json()
            return result
        await asyncio.sleep(0.05 * (attempt + 1))
    response.raise_for_status()
    raise RuntimeError("unreachable")


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
    system = stack.system
    backlog = await queries.payments_backlog(system.payments.db)
    rows = await queries.payment_rows(system.payments.db)
    applied = [r.order_id for r in rows if r.order_outcome == "order.payment_applied"]
    known = {r.payment_id: r.status for r in rows}
    gateway = stack.simulator.search_payments(limit=1_000_000)["results"]
    moving = {
        "gateway deliveries and approvals in flight": stack.simulator.in_flight,
        "notifications waiting": backlog.notifications_waiting,
        "payment events in the outbox": backlog.outbox_pending,
        "outcomes in the orders outbox": await queries.outbox_pending(
            system.orders.db, orders_side=True),
        "approvals without the order side's answer": sum(
            1 for r in rows if r.status == "approved" and r.order_outcome is None),
        "a displaced keeper's answer en route": len(applied) - len(set(applied)),
        "refunds requested": (await queries.refund_counts(system.payments.db)).get(
            "requested", 0),
        "gateway payments payrelay has not caught up with": sum(
            1 for g in gateway if known.get(str(g["id"])) != g["status"]),
    }
    return {what: count for what, count in moving.items() if count}
