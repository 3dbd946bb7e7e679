"""The chaos checker over hand-made facts: a clean run passes, and each violation is found
with its order and payment. The seeded schedule is the same for the same seed."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from payrelay.chaos.checker import Violation, check
from payrelay.chaos.facts import POISON_MARKER, Facts, GatewayPayment, LedgerMoney, Step
from payrelay.chaos.options import FaultKind
from payrelay.chaos.schedule import plan_faults
from payrelay.domain.work import RefundStatus
from payrelay.entrypoints.chaos_command import parse_faults
from payrelay.ports import OrderRow, PaymentRow, PaymentsBacklog

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(minutes=5)
SLA = timedelta(seconds=45)
APPLIED, REJECTED = "order.payment_applied", "order.payment_rejected"


def gateway(pid: str, order: str, status: str = "approved", refunds: int = 0,
            approved: datetime | None = LONG_AGO) -> GatewayPayment:
    return GatewayPayment(pid, order, status, approved, refunds)


def row(pid: str, order: str, status: str = "approved", outcome: str | None = APPLIED,
        reason: str | None = None) -> PaymentRow:
    return PaymentRow(pid, order, status, 2500, "BRL", LONG_AGO, 1, outcome, reason)


def order(oid: str, status: str = "paid", paid_by: str | None = "1") -> OrderRow:
    return OrderRow(oid, status, 2500, "BRL", paid_by, LONG_AGO + timedelta(seconds=1))


def money(charged: str, refunded: str = "0") -> LedgerMoney:
    return LedgerMoney(Decimal(charged), Decimal(refunded), Decimal(0))


def clean() -> Facts:
    """Order A paid by 1; order B paid by 2, with 3 a second payment refunded."""
    return Facts(
        gateway={"1": gateway("1", "A"), "2": gateway("2", "B"),
                 "3": gateway("3", "B", "refunded", refunds=1)},
        ledger={"A": money("25"), "B": money("50", "25")},
        gateway_stats={"delivered": 3},
        payments={"1": row("1", "A"), "2": row("2", "B"),
                  "3": row("3", "B", "refunded", REJECTED, "already_paid")},
        orders={"A": order("A"), "B": order("B", paid_by="2")},
        refunds={"3": RefundStatus.SUCCEEDED},
        payments_timeline=[Step("B", "3", "outcome.order.payment_rejected"),
                           Step("B", "3", "refund.succeeded")],
        orders_timeline=[Step("A", "1", APPLIED), Step("B", "2", APPLIED),
                         Step("B", "3", REJECTED), Step("B", "3", "stale.payment.approved")],
        dead_letters=[b'{"' + POISON_MARKER + b'": 1}'],
        dead_work=0,
        reconciler_found=frozenset({"3"}),
        backlog=PaymentsBacklog(0, 0, 5, 3),
        orders_outbox_pending=0,
        retries=0,
        reconciler_fixes=1,
    )


def verdict_of(facts: Facts) -> dict[Violation, int]:
    verdict = check(facts, now=NOW, sla=SLA)
    return {v: verdict.count(v) for v in Violation if verdict.count(v)}


def test_a_clean_run_passes_and_classifies_every_approved_payment() -> None:
    verdict = check(clean(), now=NOW, sla=SLA)
    assert verdict.ok, verdict.findings
    assert verdict.classes["applied"] == 2
    assert verdict.classes["compensated"] == 1
    assert verdict.evidence["poison messages dead-lettered"] == 1


def test_an_approved_payment_payrelay_never_recorded_is_lost() -> None:
    facts = clean()
    facts.gateway["4"] = gateway("4", "A")
    facts = dataclasses.replace(facts, ledger={**facts.ledger, "A": money("50")})
    found = check(facts, now=NOW, sla=SLA).findings
    assert [(f.violation, f.order_id, f.payment_id) for f in found] == [
        (Violation.LOST, "A", "4"), (Violation.UNREFUNDED_DOUBLE_CHARGES, "A", "1")]


def test_a_pending_order_with_an_old_approval_is_stuck_and_a_young_one_in_flight() -> None:
    facts = clean()
    facts.orders["A"] = order("A", "pending_payment", paid_by=None)
    assert verdict_of(facts) == {Violation.STUCK_BEYOND_SLA: 1}
    facts.gateway["1"] = gateway("1", "A", approved=NOW - timedelta(seconds=5))
    assert verdict_of(facts) == {}


def test_a_refund_of_the_paying_payment_is_wrongful() -> None:
    facts = clean()
    facts.gateway["1"] = gateway("1", "A", "refunded", refunds=1)
    facts.ledger["A"] = money("25", "25")
    assert verdict_of(facts) == {Violation.WRONGFUL_REFUNDS: 1}


def test_an_outcome_recorded_twice_or_a_double_refund_is_a_duplicated_effect() -> None:
    facts = clean()
    facts.payments_timeline.append(Step("B", "3", "outcome.order.payment_rejected"))
    facts.gateway["3"] = gateway("3", "B", "refunded", refunds=2)
    assert verdict_of(facts) == {Violation.DUPLICATED_EFFECTS: 2}


def test_a_dead_letter_that_is_not_poison_is_unexpected() -> None:
    facts = dataclasses.replace(clean(), dead_letters=[b'{"type": "payment.approved"}'])
    assert verdict_of(facts) == {Violation.UNEXPECTED_DEAD_LETTERS: 1}


def test_the_schedule_is_the_seeds_and_each_kind_switched_on_appears() -> None:
    kinds = frozenset({FaultKind.KILL, FaultKind.REPUBLISH, FaultKind.POISON})
    plan = plan_faults(kinds, seed=3, window=20.0, targets=["a", "b"])
    assert plan == plan_faults(kinds, seed=3, window=20.0, targets=["a", "b"])
    assert plan != plan_faults(kinds, seed=4, window=20.0, targets=["a", "b"])
    assert {f.kind for f in plan} == kinds
    assert all(0 <= f.at < 20.0 for f in plan)
    assert {f.target for f in plan if f.kind is FaultKind.KILL} <= {"a", "b"}
    short = plan_faults(frozenset({FaultKind.KILL}), seed=3, window=0.5, targets=["a"])
    assert len(short) >= 1


def test_switching_one_kind_off_leaves_the_others_schedule_alone() -> None:
    both = plan_faults(frozenset({FaultKind.KILL, FaultKind.GATEWAY}), seed=1, window=30.0,
                       targets=["a"])
    alone = plan_faults(frozenset({FaultKind.KILL}), seed=1, window=30.0, targets=["a"])
    assert [f for f in both if f.kind is FaultKind.KILL] == alone


@pytest.mark.parametrize(("text", "kinds"), [
    ("all", set(FaultKind)), ("none", set()),
    ("kill, pg_terminate", {FaultKind.KILL, FaultKind.PG_TERMINATE}),
])
def test_fault_kinds_are_named_on_the_command_line(text: str, kinds: set[FaultKind]) -> None:
    assert parse_faults(text) == kinds
