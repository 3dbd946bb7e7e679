"""The demo's consistency report: figures, and each invariant with its verdict."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from payrelay.adapters.storage import queries
from payrelay.domain.events import EventType
from payrelay.domain.money import Money
from payrelay.entrypoints.embedded import EmbeddedStack


@dataclass(frozen=True, slots=True)
class Invariant:
    name: str
    holds: bool
    detail: str = ""


@dataclass
class Report:
    figures: list[tuple[str, str]] = field(default_factory=list)
    invariants: list[Invariant] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(i.holds for i in self.invariants)

    def render(self, console: Console) -> None:
        figures = Table(title="payrelay demo: what happened", show_header=False)
        for name, value in self.figures:
            figures.add_row(name, value)
        console.print(figures)
        verdicts = Table(title="invariants")
        verdicts.add_column("invariant")
        verdicts.add_column("verdict")
        verdicts.add_column("detail")
        for inv in self.invariants:
            mark = "[green]holds[/green]" if inv.holds else "[red]FAILS[/red]"
            verdicts.add_row(inv.name, mark, inv.detail)
        console.print(verdicts)


async def build_report(stack: EmbeddedStack, *, orders_created: int) -> Report:
    system = stack.system
    payments = {p.payment_id: p for p in await queries.payment_rows(system.payments.db)}
    orders = {o.order_id: o for o in await queries.order_rows(system.orders.db)}
    gateway = _gateway_payments(stack)
    backlog = await queries.payments_backlog(system.payments.db)
    orders_outbox = await queries.outbox_pending(system.orders.db, orders_side=True)
    sim = stack.simulator.stats
    refunds = await queries.refund_counts(system.payments.db)
    consumer = system.orders.consumer.stats
    approved = [g for g in gateway.values() if g["status"] == "approved"]
    paid = [o for o in orders.values() if o.status == "paid"]
    pending = [o for o in orders.values() if o.status == "pending_payment"]
    rejected = [g for g in gateway.values() if g["status"] == "rejected"]
    report = Report()
    report.figures = [
        ("orders created", str(orders_created)),
        ("orders paid", str(len(paid))),
        ("orders pending payment", str(len(pending))),
        ("payments approved (gateway)", str(len(approved))),
        ("payments rejected (gateway)", str(len(rejected))),
        ("notifications sent / delivered", f"{sim.sent} / {sim.delivered}"),
        ("notifications recorded", str(backlog.notifications)),
        ("duplicate webhooks absorbed", str(max(sim.delivered - backlog.notifications, 0))),
        ("events published", str(backlog.outbox_sent)),
        ("events consumed", str(consumer.consumed)),
        ("redeliveries absorbed by the inbox", str(consumer.duplicates)),
        ("stale events ignored", str(consumer.stale)),
        ("approval -> PAID latency", _latency(payments, orders)),
        ("retries (stored work tried again)", str(
            await queries.retries(system.payments.db, orders_side=False)
            + await queries.retries(system.orders.db, orders_side=True)
        )),
        ("dead letters", str(
            await queries.dead_letter_count(system.payments.db, orders_side=False)
            + await queries.dead_letter_count(system.orders.db, orders_side=True)
        )),
        ("reconciler fixes", str(await queries.reconciler_fixes(system.payments.db))),
        ("refunds issued / held", f"{refunds.get('succeeded', 0)} / {refunds.get('held', 0)}"),
        ("faults injected", str(sum(system.faults.fired.values()))),
    ]
    report.invariants = [
        _every_approved_payment_accounted(approved, payments, orders),
        _no_order_paid_twice(payments, orders),
        Invariant(
            "the outbox is empty",
            backlog.outbox_pending == 0 and orders_outbox == 0,
            f"payments {backlog.outbox_pending}, orders {orders_outbox} pending",
        ),
        Invariant(
            "every notification was processed",
            backlog.notifications_waiting == 0,
            f"{backlog.notifications_waiting} waiting",
        ),
        _agrees_with_gateway(gateway, payments),
        _money_adds_up(stack, orders),
        Invariant(
            "no refund is left unfinished",
            not refunds.get("requested"),
            f"{refunds.get('requested', 0)} still requested",
        ),
    ]
    return report


def _gateway_payments(stack: EmbeddedStack) -> dict[str, dict[str, Any]]:
    results = stack.simulator.search_payments(limit=1_000_000)["results"]
    return {str(p["id"]): p for p in results}


def _every_approved_payment_accounted(
    approved: list[dict[str, Any]], payments: dict[str, Any], orders: dict[str, Any]
) -> Invariant:
    bad = []
    for g in approved:
        pid, row = str(g["id"]), payments.get(str(g["id"]))
        order = orders.get(g["external_reference"])
        paid_by_it = order is not None and order.status == "paid" and order.paid_by == pid
        rejected = row is not None and row.order_outcome == EventType.ORDER_PAYMENT_REJECTED \
            and row.outcome_reason is not None
        if not (paid_by_it or rejected):
            bad.append(pid)
    return Invariant(
        "every approved payment's order is PAID, or the payment was rejected with a reason",
        not bad,
        f"{len(approved)} checked" if not bad else f"unaccounted: {', '.join(bad[:5])}",
    )


def _no_order_paid_twice(payments: dict[str, Any], orders: dict[str, Any]) -> Invariant:
    applied: dict[str, list[str]] = defaultdict(list)
    for row in payments.values():
        if row.order_outcome == EventType.ORDER_PAYMENT_APPLIED and row.order_id:
            applied[row.order_id].append(row.payment_id)
    twice = [oid for oid, pids in applied.items() if len(pids) > 1]
    mismatched = [
        oid for oid, pids in applied.items()
        if oid in orders and orders[oid].paid_by not in pids
    ]
    return Invariant(
        "no order paid twice without a rejection",
        not twice and not mismatched,
        f"{len(applied)} paid orders checked" if not (twice or mismatched)
        else f"twice: {twice[:3]}, mismatched: {mismatched[:3]}",
    )


def _agrees_with_gateway(gateway: dict[str, Any], payments: dict[str, Any]) -> Invariant:
    differ = [
        pid for pid, g in gateway.items()
        if pid not in payments or payments[pid].status != g["status"]
    ]
    return Invariant(
        "payrelay's payment statuses equal the gateway's",
        not differ,
        f"{len(gateway)} payments" if not differ else f"differ: {', '.join(differ[:5])}",
    )


def _latency(payments: dict[str, Any], orders: dict[str, Any]) -> str:
    samples = []
    for order in orders.values():
        row = payments.get(order.paid_by) if order.paid_by else None
        if row is not None and row.date_approved and order.paid_at:
            samples.append((order.paid_at - row.date_approved).total_seconds() * 1000)
    if len(samples) < 2:
        return "n/a"
    cuts = statistics.quantiles(samples, n=100)
    return f"p50 {cuts[49]:.0f} ms, p99 {cuts[98]:.0f} ms ({len(samples)} orders)"


def _money_adds_up(stack: EmbeddedStack, orders: dict[str, Any]) -> Invariant:
    """Charged minus refunded is the total for a paid order and zero for any other."""
    wrong = []
    for order_id, entry in stack.simulator.ledger().items():
        order = orders.get(order_id)
        if order is None:
            continue
        expected = Money.from_minor(order.total_minor, order.currency).amount \
            if order.status == "paid" else Decimal(0)
        if entry.charged - entry.refunded != expected:
            wrong.append(f"{order_id[:8]} {order.status}: {entry.charged - entry.refunded}")
    return Invariant(
        "charged minus refunded equals the total for paid orders, zero for others",
        not wrong,
        f"{len(orders)} orders against the gateway ledger" if not wrong
        else "; ".join(wrong[:3]),
    )
