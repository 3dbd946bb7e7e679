"""The demo's consistency report: figures, and each invariant with its verdict."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

from payrelay.domain.events import EventType
from payrelay.domain.money import Money
from payrelay.domain.order import OrderStatus
from payrelay.domain.payment import PaymentStatus
from payrelay.domain.work import RefundStatus
from payrelay.entrypoints.embedded import EmbeddedStack
from payrelay.ports import OrderRow, PaymentRow, PaymentsBacklog


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


@dataclass(frozen=True, slots=True)
class _Facts:
    """Everything the report reads, once, from the gateway and both read models."""

    payments: dict[str, PaymentRow]
    orders: dict[str, OrderRow]
    gateway: dict[str, dict[str, Any]]
    backlog: PaymentsBacklog
    orders_outbox: int
    refunds: dict[RefundStatus, int]
    retries: int
    dead_letters: int
    reconciler_fixes: int

    def gateway_in(self, status: PaymentStatus) -> list[dict[str, Any]]:
        return [g for g in self.gateway.values() if g["status"] == status]

    def orders_in(self, status: OrderStatus) -> list[OrderRow]:
        return [o for o in self.orders.values() if o.status == status]


async def build_report(stack: EmbeddedStack, *, orders_created: int) -> Report:
    facts = await _read_facts(stack)
    return Report(
        figures=_figures(stack, facts, orders_created=orders_created),
        invariants=_invariants(stack, facts),
    )


async def _read_facts(stack: EmbeddedStack) -> _Facts:
    payments, orders = stack.system.payments.reads, stack.system.orders.reads
    return _Facts(
        payments={p.payment_id: p for p in await payments.payment_rows()},
        orders={o.order_id: o for o in await orders.order_rows()},
        gateway=_gateway_payments(stack),
        backlog=await payments.backlog(),
        orders_outbox=await orders.outbox_pending(),
        refunds=await payments.refund_counts(),
        retries=await payments.retries() + await orders.retries(),
        dead_letters=await payments.dead_letter_count() + await orders.dead_letter_count(),
        reconciler_fixes=await payments.reconciler_fixes(),
    )


def _figures(
    stack: EmbeddedStack, facts: _Facts, *, orders_created: int
) -> list[tuple[str, str]]:
    sim, consumer = stack.simulator.stats, stack.system.orders.consumer.stats
    backlog, refunds = facts.backlog, facts.refunds
    return [
        ("orders created", str(orders_created)),
        ("orders paid", str(len(facts.orders_in(OrderStatus.PAID)))),
        ("orders pending payment", str(len(facts.orders_in(OrderStatus.PENDING_PAYMENT)))),
        ("payments approved (gateway)", str(len(facts.gateway_in(PaymentStatus.APPROVED)))),
        ("payments rejected (gateway)", str(len(facts.gateway_in(PaymentStatus.REJECTED)))),
        ("notifications sent / delivered", f"{sim.sent} / {sim.delivered}"),
        ("notifications recorded", str(backlog.notifications)),
        ("duplicate webhooks absorbed", str(max(sim.delivered - backlog.notifications, 0))),
        ("events published", str(backlog.outbox_sent)),
        ("events consumed", str(consumer.consumed)),
        ("redeliveries absorbed by the inbox", str(consumer.duplicates)),
        ("stale events ignored", str(consumer.stale)),
        ("approval -> PAID latency", _latency(facts.payments, facts.orders)),
        ("retries (stored work tried again)", str(facts.retries)),
        ("dead letters", str(facts.dead_letters)),
        ("reconciler fixes", str(facts.reconciler_fixes)),
        ("refunds issued / held", f"{refunds.get(RefundStatus.SUCCEEDED, 0)} / "
                                  f"{refunds.get(RefundStatus.HELD, 0)}"),
        ("faults injected", str(sum(stack.system.faults.fired.values()))),
    ]


def _invariants(stack: EmbeddedStack, facts: _Facts) -> list[Invariant]:
    backlog, orders_outbox = facts.backlog, facts.orders_outbox
    requested = facts.refunds.get(RefundStatus.REQUESTED, 0)
    return [
        _every_approved_payment_accounted(
            facts.gateway_in(PaymentStatus.APPROVED), facts.payments, facts.orders
        ),
        _no_order_paid_twice(facts.payments, facts.orders),
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
        _agrees_with_gateway(facts.gateway, facts.payments),
        _money_adds_up(stack, facts.orders),
        Invariant("no refund is left unfinished", not requested, f"{requested} still requested"),
    ]


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
        paid_by_it = (
            order is not None and order.status == OrderStatus.PAID and order.paid_by == pid
        )
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
            if order.status == OrderStatus.PAID else Decimal(0)
        if entry.charged - entry.refunded != expected:
            wrong.append(f"{order_id[:8]} {order.status}: {entry.charged - entry.refunded}")
    return Invariant(
        "charged minus refunded equals the total for paid orders, zero for others",
        not wrong,
        f"{len(orders)} orders against the gateway ledger" if not wrong
        else "; ".join(wrong[:3]),
    )
