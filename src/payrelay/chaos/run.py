"""One chaos run: start the topology, drive customers while faults fire on schedule, let
everything settle (the reconciler gets its SLA), then check and report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from payrelay.adapters.storage.database import Database
from payrelay.chaos.backing import Backing, embedded_files, server_backing
from payrelay.chaos.checker import check
from payrelay.chaos.drain import BacklogSampler
from payrelay.chaos.drivers import Customer, Driving, Plan, draw_plans, drive, payments_in
from payrelay.chaos.facts import Facts, read_facts
from payrelay.chaos.injectors import Injectors, SimulatorKnobs
from payrelay.chaos.options import NETWORK, ChaosOptions, FaultKind
from payrelay.chaos.report import ChaosReport
from payrelay.chaos.schedule import PlannedFault, plan_faults, run_schedule
from payrelay.chaos.skew import faketime_library
from payrelay.chaos.topology import Topology, running_topology
from payrelay.domain.payment import PaymentStatus
from payrelay.domain.work import RefundStatus

log = logging.getLogger("payrelay.chaos")

QUIET_READS = 3  # in a row, a second apart, before the run counts as settled


@dataclass
class _Databases:
    payments: Database
    orders: Database


@contextlib.asynccontextmanager
async def _backing(options: ChaosOptions, data_dir: Path) -> AsyncIterator[Backing]:
    if options.embedded:
        async with embedded_files(data_dir) as backing:
            yield backing
    else:
        async with server_backing(
            data_dir,
            postgres_url=None if options.private_postgres else options.postgres_url,
            rabbitmq_url=None if options.private_rabbitmq else options.rabbitmq_url,
        ) as backing:
            for name, what in backing.describe().items():
                log.warning("chaos: %s: %s", name, what)
            if options.faults_off():
                log.warning("chaos: %s", _faults_off(options))
            yield backing


def _faults_off(options: ChaosOptions) -> str:
    kinds = ", ".join(sorted(options.faults_off()))
    return f"{kinds} off: they would stop or cut a server this run did not start"


async def run_chaos(options: ChaosOptions, log_dir: Path) -> ChaosReport:
    """The whole run; `log_dir` receives every process's log and the findings.

    SIGTERM cancels it like Ctrl+C does: every process it started is stopped and the
    scratch databases and queues are removed on the way out.
    """
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await _run(options, log_dir)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def _run(options: ChaosOptions, log_dir: Path) -> ChaosReport:
    if FaultKind.CLOCK_SKEW in options.active_faults():
        faketime_library()  # missing: fail now, saying how to install it, not mid-run
    async with contextlib.AsyncExitStack() as stack:
        backing = await stack.enter_async_context(_backing(options, log_dir))
        topology = await stack.enter_async_context(running_topology(
            backing, log_dir, extra_env=options.extra_env,
            proxied=bool(options.active_faults() & NETWORK)))
        dbs = _Databases(Database(backing.payments_database_url),
                         Database(backing.orders_database_url))
        stack.push_async_callback(dbs.orders.dispose)
        stack.push_async_callback(dbs.payments.dispose)
        stop = asyncio.Event()
        supervisor = asyncio.create_task(topology.supervise(stop))
        try:
            report = await _drive_and_check(options, backing, topology, dbs)
        finally:
            stop.set()
            await supervisor
        report.log_dir = str(log_dir)
        (log_dir / "findings.txt").write_text("".join(
            f"{f.violation.value} order_id={f.order_id} payment_id={f.payment_id} {f.detail}\n"
            for f in report.verdict.findings))
        return report
    raise AssertionError("unreachable")


async def _drive_and_check(
    options: ChaosOptions, backing: Backing, topology: Topology, dbs: _Databases
) -> ChaosReport:
    loop = asyncio.get_running_loop()
    plans = draw_plans(options.payments, options.seed)
    knobs = SimulatorKnobs(topology.endpoints.simulator_url, options.seed)
    injectors = Injectors(topology, backing, knobs, random.Random(f"{options.seed}:inject"))
    driving = Driving(topology.endpoints, options.seed, options.rate,
                      options.second_payment_after, options.duration)
    started = loop.time()
    sampler, sampling = BacklogSampler(dbs.payments, dbs.orders, started), asyncio.Event()
    planned = _planned_faults(options, plans, topology)
    # A task group: if the run is cancelled (SIGTERM, Ctrl+C), no fault goes on firing.
    async with asyncio.TaskGroup() as tg:
        tg.create_task(sampler.run(sampling))
        faults = tg.create_task(run_schedule(planned, injectors.inject, started_at=started))
        customers = await drive(driving, plans)
        for gave_up in (c for c in customers if c.gave_up):  # why, for whoever reads the log
            log.warning("chaos: customer %d (order %s) gave up: %s", gave_up.index,
                        gave_up.order_id, gave_up.gave_up)
        injected = await faults
        await knobs.calm()
        for name in sorted(topology.down):  # a fault cut short: every process runs again
            await topology.restart(name)
        driven = loop.time()
        facts, moving = await _settle(topology, dbs, options)
        sampling.set()
    verdict = check(facts, now=datetime.now(UTC), sla=timedelta(seconds=options.sla))
    figures = backing.describe() | _figures(customers, topology, injectors, facts) | {
        "driving (s)": f"{driven - started:.1f}",
        "settling (s)": f"{loop.time() - driven:.1f}",
        "settled": "yes" if not moving else "NO: " + ", ".join(
            f"{what} {n}" for what, n in moving.items()),
    }
    if options.faults_off():
        figures["faults off"] = _faults_off(options)
    backend = "embedded (SQLite, local transport)" if backing.embedded else \
        "PostgreSQL + RabbitMQ"
    return ChaosReport(backend, options.seed, verdict, injected, figures,
                       drain=sampler.drain_times(injected))


def _planned_faults(
    options: ChaosOptions, plans: list[Plan], topology: Topology
) -> list[PlannedFault]:
    # Faults go on while customers who pay again "later" are still paying.
    window = sum(map(payments_in, plans)) / options.rate + options.second_payment_after[1]
    if options.duration is not None:
        window = min(window, options.duration)
    links = tuple(sorted(topology.network.links)) if topology.network else ()
    return plan_faults(options.applicable_faults(), seed=options.seed, window=window,
                       targets=sorted(topology.workers), links=links)


def _figures(customers: list[Customer], topology: Topology, injectors: Injectors,
             facts: Facts) -> dict[str, int | str]:
    return {
        "customers": len(customers),
        "customers who gave up": sum(1 for c in customers if c.gave_up),
        "payments made (gateway)": len(facts.gateway),
        "gateway payments payrelay never recorded": sum(
            1 for pid in facts.gateway if pid not in facts.payments),
        "orders": len(facts.orders),
        "payrelay processes": len(topology.workers),
        "processes restarted": topology.restarts(),
        "processes that exited by themselves": len(topology.unexpected_exits),
        "outbox rows republished": injectors.republished,
        "poison messages published": injectors.poison_sent,
        **_network_figures(topology),
    }


def _network_figures(topology: Topology) -> dict[str, int | str]:
    if topology.network is None:
        return {}
    proxies = [p for ps in topology.network.links.values() for p in ps]
    return {
        "links proxied": ", ".join(sorted(topology.network.links)),
        "connections through the proxies": sum(p.accepted for p in proxies),
        "connections reset by cuts": sum(p.resets for p in proxies),
    }


async def _settle(
    topology: Topology, dbs: _Databases, options: ChaosOptions
) -> tuple[Facts, dict[str, int]]:
    """Read the facts until nothing has moved for a few reads in a row, or the time is up:
    (the last facts, what was still moving; {} once settled)."""
    loop = asyncio.get_running_loop()
    deadline, quiet, last = loop.time() + options.settle_timeout, 0, None
    while True:
        facts = await read_facts(topology.endpoints, dbs.payments, dbs.orders)
        moving = still_moving(facts)
        stats = facts.gateway_stats
        quiet = quiet + 1 if not moving and stats == last else 0
        last = stats
        if quiet >= QUIET_READS or loop.time() >= deadline:
            return facts, moving
        await asyncio.sleep(1.0)


def still_moving(facts: Facts) -> dict[str, int]:
    """What is still on its way, by where it waits (only the non-zero counts)."""
    rows = facts.payments
    moving = {
        "notifications waiting": facts.backlog.notifications_waiting,
        "payment events in the outbox": facts.backlog.outbox_pending,
        "outcomes in the orders outbox": facts.orders_outbox_pending,
        "approvals without the order side's answer": sum(
            1 for r in rows.values() if r.status == PaymentStatus.APPROVED
            and r.order_outcome is None),
        "refunds requested": sum(
            1 for s in facts.refunds.values() if s is RefundStatus.REQUESTED),
        "gateway payments payrelay has not caught up with": sum(
            1 for g in facts.gateway.values()
            if g.payment_id not in rows or rows[g.payment_id].status != g.status),
    }
    return {what: count for what, count in moving.items() if count}
