"""The invariants, checked over what the gateway and both databases recorded.

Each approved payment the gateway holds is classified the way RabbitMQ's Jepsen tests
classify messages: applied (it paid its order), compensated (rejected with a reason and
refunded), held (rejected, its refund left to a person), recovered (either of the first
two, and payrelay first heard of it from the reconciler: its webhooks were lost), in
flight (younger than the SLA), stuck or lost. Money is checked per order against the
gateway's ledger, and every effect a message causes must appear at most once. Each
violation is a `Finding` with its order and payment.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from payrelay.chaos.facts import POISON_MARKER, Facts, GatewayPayment
from payrelay.domain.events import EventType
from payrelay.domain.money import Money
from payrelay.domain.order import OrderStatus
from payrelay.domain.payment import PaymentStatus
from payrelay.domain.work import RefundStatus
from payrelay.ports import OrderRow


class Violation(StrEnum):
    LOST = "LOST"
    """An approved payment whose order is neither paid by it nor explained by a rejection
    and a refund (or a held refund), past the SLA; or one payrelay never recorded."""
    STUCK_BEYOND_SLA = "STUCK_BEYOND_SLA"
    """An order still pending payment although a payment for it was approved > SLA ago."""
    DUPLICATED_EFFECTS = "DUPLICATED_EFFECTS"
    """A decision, an outcome, an order transition or a refund recorded twice for one
    payment (or order), or a payment refunded twice at the gateway."""
    UNREFUNDED_DOUBLE_CHARGES = "UNREFUNDED_DOUBLE_CHARGES"
    """An order whose net charge (charged - refunded) is above its total when paid, or
    above zero when not."""
    WRONGFUL_REFUNDS = "WRONGFUL_REFUNDS"
    """An order refunded below its total while paid, or whose paying payment was refunded."""
    UNEXPECTED_DEAD_LETTERS = "UNEXPECTED_DEAD_LETTERS"
    """A dead message, notification or refund other than an injected poison message."""


SUMMARY = (Violation.LOST, Violation.STUCK_BEYOND_SLA, Violation.DUPLICATED_EFFECTS,
           Violation.UNREFUNDED_DOUBLE_CHARGES, Violation.WRONGFUL_REFUNDS)
# Steps that record one decision or effect: each at most once per payment (or per order).
_ONCE_PER_PAYMENT = frozenset({
    "order.payment_applied", "order.payment_rejected", "order.payment_displaced",
    "outcome.order.payment_applied", "outcome.order.payment_rejected",
    "refund.requested", "refund.held", "refund.succeeded",
})
_ONCE_PER_ORDER = frozenset({"order.created", "order.cancelled", "order.expired"})
RECOVERED = "recovered (payrelay first heard of it from the reconciler)"


@dataclass(frozen=True, slots=True)
class Finding:
    violation: Violation
    order_id: str | None
    payment_id: str | None
    detail: str


@dataclass
class Verdict:
    findings: list[Finding] = field(default_factory=list)
    classes: Counter[str] = field(default_factory=Counter)
    """Approved payments by class: applied, compensated, held, recovered, in flight..."""
    evidence: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)

    def count(self, violation: Violation) -> int:
        return sum(1 for f in self.findings if f.violation is violation)

    @property
    def ok(self) -> bool:
        return not self.findings


def check(facts: Facts, *, now: datetime, sla: timedelta) -> Verdict:
    verdict = Verdict()
    in_flight: set[str] = set()
    for payment in facts.gateway.values():
        if payment.date_approved is not None:
            _classify(facts, payment, verdict, in_flight, young=now - payment.date_approved < sla)
    _check_money(facts, verdict, in_flight)
    _check_effects_once(facts, verdict)
    _check_dead_letters(facts, verdict)
    verdict.evidence = _evidence(facts)
    verdict.latency_ms = _latency(facts)
    return verdict


def _classify(
    facts: Facts, p: GatewayPayment, verdict: Verdict, in_flight: set[str], *, young: bool
) -> None:
    order = facts.orders.get(p.order_id or "")
    row = facts.payments.get(p.payment_id)
    kind = None
    if order is not None and order.paid_by == p.payment_id and order.status in (
        OrderStatus.PAID, OrderStatus.REFUNDED
    ):
        kind = "applied"
    elif row is not None and row.order_outcome == EventType.ORDER_PAYMENT_REJECTED:
        refund = facts.refunds.get(p.payment_id)
        if p.status == PaymentStatus.REFUNDED and refund is RefundStatus.SUCCEEDED:
            kind = "compensated"
        elif refund is RefundStatus.HELD:
            kind = "held"
    if kind is not None:
        verdict.classes[kind] += 1
        if p.payment_id in facts.reconciler_found:
            verdict.classes[RECOVERED] += 1
        return
    if young:
        verdict.classes["in flight (younger than the SLA)"] += 1
        if order is not None:
            in_flight.add(order.order_id)
        return
    pending = order is not None and order.status == OrderStatus.PENDING_PAYMENT
    violation = Violation.STUCK_BEYOND_SLA if pending else Violation.LOST
    verdict.classes["stuck" if pending else "lost"] += 1
    seen = "never recorded by payrelay" if row is None else (
        f"payrelay has it {row.status}, outcome {row.order_outcome or 'none'}")
    where = f"order {order.status}" if order is not None else "no such order"
    verdict.findings.append(Finding(violation, p.order_id, p.payment_id,
                                    f"approved at the gateway; {where}; {seen}"))


def _total(order: OrderRow) -> Decimal:
    return Money.from_minor(order.total_minor, order.currency).amount


def _check_money(facts: Facts, verdict: Verdict, in_flight: set[str]) -> None:
    """Charged minus refunded is the total for a paid order and zero for any other."""
    for order_id, money in facts.ledger.items():
        order = facts.orders.get(order_id)
        if order is None or order_id in in_flight or order.status in (
            OrderStatus.PENDING_PAYMENT, OrderStatus.NEEDS_REVIEW  # stuck, or a person's call
        ):
            continue
        expected = _total(order) if order.status == OrderStatus.PAID else Decimal(0)
        keeper = facts.gateway.get(order.paid_by or "")
        if money.net > expected:
            verdict.findings.append(Finding(
                Violation.UNREFUNDED_DOUBLE_CHARGES, order_id, order.paid_by,
                f"order {order.status}: net {money.net}, expected {expected}"))
        elif money.net < expected or (
            order.status == OrderStatus.PAID and keeper is not None and keeper.refunds
        ):
            verdict.findings.append(Finding(
                Violation.WRONGFUL_REFUNDS, order_id, order.paid_by,
                f"order {order.status}: net {money.net}, expected {expected}"))


def _check_effects_once(facts: Facts, verdict: Verdict) -> None:
    per_payment = Counter(
        (s.order_id, s.payment_id, s.step)
        for s in (*facts.orders_timeline, *facts.payments_timeline)
        if s.step in _ONCE_PER_PAYMENT and s.payment_id
    )
    per_order = Counter(
        (s.order_id, None, s.step) for s in facts.orders_timeline if s.step in _ONCE_PER_ORDER
    )
    for (order_id, payment_id, step), times in (per_payment + per_order).items():
        if times > 1:
            verdict.findings.append(Finding(
                Violation.DUPLICATED_EFFECTS, order_id, payment_id, f"{step} recorded {times}x"))
    for p in facts.gateway.values():
        if p.refunds > 1:
            verdict.findings.append(Finding(
                Violation.DUPLICATED_EFFECTS, p.order_id, p.payment_id,
                f"refunded {p.refunds}x at the gateway"))


def _check_dead_letters(facts: Facts, verdict: Verdict) -> None:
    unexpected = [b for b in facts.dead_letters if POISON_MARKER not in b]
    for body in unexpected:
        verdict.findings.append(Finding(
            Violation.UNEXPECTED_DEAD_LETTERS, None, None, f"dead message {body[:120]!r}"))
    if facts.dead_work:
        verdict.findings.append(Finding(
            Violation.UNEXPECTED_DEAD_LETTERS, None, None,
            f"{facts.dead_work} notifications or refunds given up as dead"))


def _evidence(facts: Facts) -> dict[str, int]:
    """Signs that something went wrong and was recovered from: not violations."""
    stats = facts.gateway_stats
    return {
        "webhook copies delivered": stats.get("delivered", 0),
        "notifications recorded (duplicates folded)": facts.backlog.notifications,
        "webhooks dropped or given up by the gateway": stats.get("dropped", 0)
        + stats.get("failed", 0),
        "gateway API calls failed or slowed": stats.get("api_errors", 0)
        + stats.get("api_slow", 0),
        "stale events ignored (orders side)": sum(
            1 for s in facts.orders_timeline if s.step.startswith("stale.")),
        "retries of stored work": facts.retries,
        "reconciler fixes": facts.reconciler_fixes,
        "poison messages dead-lettered": sum(
            1 for b in facts.dead_letters if POISON_MARKER in b),
    }


def _latency(facts: Facts) -> dict[str, float]:
    """Approval (the gateway's time) to PAID (the order side's), in milliseconds."""
    samples = []
    for order in facts.orders.values():
        payment = facts.gateway.get(order.paid_by or "")
        if payment is not None and payment.date_approved and order.paid_at:
            samples.append((order.paid_at - payment.date_approved).total_seconds() * 1000)
    if len(samples) < 2:
        return {}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": round(cuts[49], 1), "p99": round(cuts[98], 1), "max": round(max(samples), 1)}
