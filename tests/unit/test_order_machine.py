"""The order state machine and apply_payment_event, including any arrival order of events."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payrelay.domain.errors import IllegalTransition
from payrelay.domain.events import Envelope, EventType, RejectionReason
from payrelay.domain.money import AmountProblem, InexactAmount, Money
from payrelay.domain.order import (
    TRANSITIONS,
    WAS_APPROVED,
    Order,
    OrderStatus,
    Outcome,
    PaymentRecord,
    apply_payment_event,
)
from payrelay.domain.payment import TRANSITIONS as PAYMENT_TRANSITIONS
from payrelay.domain.payment import PaymentStatus
from payrelay.domain.refund import MismatchPolicy, RefundAction, action_for

OS = OrderStatus
PS = PaymentStatus
TOTAL = Money.parse("10.00", "BRL")
AT = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)

# Written out independently of src: an accidental edit of the table fails here.
ALLOWED: frozenset[tuple[OrderStatus, OrderStatus]] = frozenset(
    {
        (OS.PENDING_PAYMENT, OS.PAID),
        (OS.PENDING_PAYMENT, OS.CANCELLED),
        (OS.PENDING_PAYMENT, OS.EXPIRED),
        (OS.PENDING_PAYMENT, OS.NEEDS_REVIEW),
        (OS.PAID, OS.REFUNDED),
        (OS.PAID, OS.NEEDS_REVIEW),
        (OS.NEEDS_REVIEW, OS.PAID),
        (OS.NEEDS_REVIEW, OS.CANCELLED),
        (OS.NEEDS_REVIEW, OS.REFUNDED),
    }
)
ALL_PAIRS = list(itertools.product(OrderStatus, OrderStatus))


def order(status: OrderStatus = OS.PENDING_PAYMENT, *, paid_by: str | None = None) -> Order:
    return Order("order-1", status, TOTAL, paid_by=paid_by, version=3)


def event(
    status: PaymentStatus,
    version: int,
    *,
    payment_id: str = "pay-1",
    amount: Money = TOTAL,
) -> Envelope:
    return Envelope(
        type=EventType.for_payment_status(status),
        occurred_at=AT,
        order_id="order-1",
        payment_id=payment_id,
        provider="mercadopago",
        amount=amount,
        payment_version=version,
        correlation_id="c",
    )


def record(
    status: PaymentStatus,
    version: int,
    outcome: Outcome | None = None,
    *,
    payment_id: str = "pay-1",
) -> PaymentRecord:
    return PaymentRecord(payment_id, "order-1", version, status, outcome)


# --- the table ------------------------------------------------------------------------


def test_table_is_exactly_the_documented_machine() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)
    actual = {(current, target) for current, targets in TRANSITIONS.items() for target in targets}
    assert actual == ALLOWED


@pytest.mark.parametrize(
    ("current", "target"), ALL_PAIRS, ids=[f"{c.value}->{t.value}" for c, t in ALL_PAIRS]
)
def test_move_to_follows_the_table(current: OrderStatus, target: OrderStatus) -> None:
    before = order(current)
    if (current, target) in ALLOWED:
        after = before.move_to(target)
        assert after.status is target
        assert after.version == before.version + 1
        assert (after.order_id, after.total, after.paid_by) == (
            before.order_id,
            before.total,
            before.paid_by,
        )
    else:
        with pytest.raises(IllegalTransition) as info:
            before.move_to(target)
        assert (info.value.machine, info.value.current, info.value.target) == (
            "order",
            current,
            target,
        )


def test_cancel_and_expire_a_pending_order() -> None:
    assert order().cancel().status is OS.CANCELLED
    assert order().expire().status is OS.EXPIRED


@pytest.mark.parametrize("status", [OS.PAID, OS.CANCELLED, OS.EXPIRED, OS.REFUNDED])
def test_cannot_expire_an_order_that_left_pending(status: OrderStatus) -> None:
    with pytest.raises(IllegalTransition):
        order(status).expire()


@pytest.mark.parametrize("status", [OS.PAID, OS.EXPIRED, OS.REFUNDED])
def test_cannot_cancel_a_paid_expired_or_refunded_order(status: OrderStatus) -> None:
    with pytest.raises(IllegalTransition):
        order(status).cancel()


# --- apply_payment_event: one event at a time -----------------------------------------


def test_approved_with_matching_amount_pays_the_order() -> None:
    effect = apply_payment_event(order(), None, event(PS.APPROVED, 1))
    assert effect.order is not None
    assert effect.order.status is OS.PAID
    assert effect.order.paid_by == "pay-1"
    assert effect.decided == Outcome.applied()
    assert effect.record == record(PS.APPROVED, 1, Outcome.applied())
    assert not effect.stale


def test_same_value_written_differently_still_matches() -> None:
    ten = Money.parse("10", "BRL")
    effect = apply_payment_event(order(), None, event(PS.APPROVED, 1, amount=ten))
    assert effect.decided == Outcome.applied()


@pytest.mark.parametrize(
    "amount",
    [Money.parse("9.99", "BRL"), Money.parse("10.01", "BRL"), Money.parse("10.00", "USD")],
    ids=["less", "more", "other-currency"],
)
def test_amount_mismatch_is_rejected_and_the_order_is_unchanged(amount: Money) -> None:
    before = order()
    effect = apply_payment_event(before, None, event(PS.APPROVED, 1, amount=amount))
    assert effect.order == before
    assert effect.decided == Outcome.rejected(RejectionReason.AMOUNT_MISMATCH)
    assert effect.record.outcome == effect.decided


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (OS.PAID, RejectionReason.ALREADY_PAID),
        (OS.CANCELLED, RejectionReason.ORDER_CANCELLED),
        (OS.EXPIRED, RejectionReason.ORDER_EXPIRED),
    ],
)
def test_approved_on_an_order_that_left_pending_is_rejected(
    status: OrderStatus, reason: RejectionReason
) -> None:
    before = order(status, paid_by="pay-other" if status is OS.PAID else None)
    effect = apply_payment_event(before, None, event(PS.APPROVED, 1))
    assert effect.order == before
    assert effect.decided == Outcome.rejected(reason)


def test_approved_for_an_unknown_order_is_rejected() -> None:
    effect = apply_payment_event(None, None, event(PS.APPROVED, 1))
    assert effect.order is None
    assert effect.decided == Outcome.rejected(RejectionReason.UNKNOWN_ORDER)
    assert effect.record.outcome == effect.decided


@pytest.mark.parametrize(
    "status", [PS.PENDING, PS.IN_PROCESS, PS.AUTHORIZED, PS.REJECTED, PS.CANCELLED]
)
def test_unsettled_or_failed_statuses_decide_nothing(status: PaymentStatus) -> None:
    before = order()
    effect = apply_payment_event(before, None, event(status, 1))
    assert effect.order == before
    assert effect.decided is None
    assert effect.record == record(status, 1)


@pytest.mark.parametrize("reversal", [PS.REFUNDED, PS.CHARGED_BACK])
def test_reversal_of_the_paying_payment_refunds_the_order(reversal: PaymentStatus) -> None:
    paid = order(OS.PAID, paid_by="pay-1")
    effect = apply_payment_event(
        paid, record(PS.APPROVED, 1, Outcome.applied()), event(reversal, 2)
    )
    assert effect.order is not None
    assert effect.order.status is OS.REFUNDED
    assert effect.order.paid_by == "pay-1"
    assert effect.decided is None
    assert effect.record == record(reversal, 2, Outcome.applied())


@pytest.mark.parametrize("reversal", [PS.REFUNDED, PS.CHARGED_BACK])
def test_reversal_seen_first_still_pays_then_refunds(reversal: PaymentStatus) -> None:
    effect = apply_payment_event(order(), None, event(reversal, 3))
    assert effect.order is not None
    assert (effect.order.status, effect.order.paid_by) == (OS.REFUNDED, "pay-1")
    assert effect.decided == Outcome.applied()


def test_refund_of_another_payment_changes_nothing() -> None:
    paid = order(OS.PAID, paid_by="pay-1")
    already_paid = Outcome.rejected(RejectionReason.ALREADY_PAID)
    other = record(PS.APPROVED, 1, already_paid, payment_id="pay-2")
    effect = apply_payment_event(paid, other, event(PS.REFUNDED, 2, payment_id="pay-2"))
    assert effect.order == paid
    assert effect.decided is None
    assert effect.record.outcome == Outcome.rejected(RejectionReason.ALREADY_PAID)


def test_refund_of_another_payment_never_seen_before_changes_nothing_on_the_order() -> None:
    paid = order(OS.PAID, paid_by="pay-1")
    effect = apply_payment_event(paid, None, event(PS.REFUNDED, 2, payment_id="pay-2"))
    assert effect.order == paid
    assert effect.decided == Outcome.rejected(RejectionReason.ALREADY_PAID)


@pytest.mark.parametrize("version", [1, 2], ids=["older", "same"])
def test_stale_version_changes_nothing(version: int) -> None:
    paid = order(OS.PAID, paid_by="pay-1")
    stored = record(PS.APPROVED, 2, Outcome.applied())
    effect = apply_payment_event(paid, stored, event(PS.REFUNDED, version))
    assert effect.stale
    assert effect.order == paid
    assert effect.record == stored
    assert effect.decided is None


def test_outcome_is_decided_once_per_payment() -> None:
    first = apply_payment_event(order(), None, event(PS.APPROVED, 1))
    assert first.decided == Outcome.applied()
    mediation = apply_payment_event(first.order, first.record, event(PS.IN_MEDIATION, 2))
    assert mediation.decided is None
    again = apply_payment_event(mediation.order, mediation.record, event(PS.APPROVED, 3))
    assert again.decided is None
    assert again.record == record(PS.APPROVED, 3, Outcome.applied())
    assert again.order == first.order


def test_a_rejected_outcome_is_not_revisited_when_the_order_changes() -> None:
    rejected = record(PS.APPROVED, 1, Outcome.rejected(RejectionReason.AMOUNT_MISMATCH))
    effect = apply_payment_event(order(), rejected, event(PS.APPROVED, 3))
    assert effect.decided is None
    assert effect.order == order()
    assert effect.record.outcome == Outcome.rejected(RejectionReason.AMOUNT_MISMATCH)


# --- any arrival order ----------------------------------------------------------------


@st.composite
def payment_events(draw: st.DrawFn, payment_id: str) -> list[Envelope]:
    """One payment's events: a legal path from pending or approved, versions 1..n."""
    path = [draw(st.sampled_from([PS.PENDING, PS.APPROVED]))]
    length = draw(st.integers(min_value=1, max_value=7))
    while len(path) < length and PAYMENT_TRANSITIONS[path[-1]]:
        path.append(draw(st.sampled_from(sorted(PAYMENT_TRANSITIONS[path[-1]]))))
    # A payment's amount is fixed at the gateway: the whole path carries one amount.
    amount = draw(st.sampled_from([TOTAL, TOTAL, Money.parse("9.99", "BRL")]))
    return [
        event(status, version, payment_id=payment_id, amount=amount)
        for version, status in enumerate(path, start=1)
    ]


@st.composite
def deliveries(draw: st.DrawFn, events: list[Envelope]) -> list[Envelope]:
    """Every event at least once, some redelivered (same message_id), shuffled."""
    repeats = draw(st.lists(st.sampled_from(events), max_size=len(events) * 2))
    return draw(st.permutations(events + repeats))


def consume(
    start: Order | None, delivery: list[Envelope]
) -> tuple[Order | None, dict[str, PaymentRecord]]:
    """What the order-side consumer does: inbox by message_id, one record per payment."""
    current = start
    records: dict[str, PaymentRecord] = {}
    inbox: set[uuid.UUID] = set()
    for envelope in delivery:
        if envelope.message_id in inbox:
            continue
        inbox.add(envelope.message_id)
        effect = apply_payment_event(current, records.get(envelope.payment_id), envelope)
        current = effect.order
        records[envelope.payment_id] = effect.record
    return current, records


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_one_payment_any_arrival_order_ends_as_version_order_does(data: st.DataObject) -> None:
    events = data.draw(payment_events("pay-1"))
    delivery = data.draw(deliveries(events))
    expected_order, expected_records = consume(order(), events)
    final_order, records = consume(order(), delivery)
    assert final_order is not None
    assert expected_order is not None
    assert (final_order.status, final_order.paid_by) == (
        expected_order.status,
        expected_order.paid_by,
    )
    assert records["pay-1"].outcome == expected_records["pay-1"].outcome
    assert records["pay-1"].last_version == len(events)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_two_payments_any_arrival_order_keep_the_invariants(data: st.DataObject) -> None:
    events = {pid: data.draw(payment_events(pid)) for pid in ("pay-1", "pay-2")}
    delivery = data.draw(deliveries(events["pay-1"] + events["pay-2"]))
    final_order, records = consume(order(), delivery)
    assert final_order is not None
    applied = {pid for pid, r in records.items() if r.outcome == Outcome.applied()}
    assert len(applied) <= 1
    if final_order.status in {OS.PAID, OS.REFUNDED}:
        assert final_order.paid_by in applied
    else:
        assert final_order.status is OS.PENDING_PAYMENT
        assert final_order.paid_by is None
        assert not applied
    for pid, path in events.items():
        if any(e.type.payment_status in WAS_APPROVED for e in path):
            assert records[pid].outcome is not None, pid
        assert records[pid].last_version == len(path)


def test_duplicate_message_id_is_applied_once() -> None:
    approved = event(PS.APPROVED, 1)
    final_order, records = consume(order(), [approved, replace(approved), approved])
    assert final_order is not None
    assert final_order.version == order().version + 1
    assert records["pay-1"].outcome == Outcome.applied()


# --- the keeper rule: the earliest approval, then the lowest id --------------------------


def _approval(payment_id: str, approved_at: datetime) -> Envelope:
    return Envelope(
        type=EventType.PAYMENT_APPROVED,
        occurred_at=approved_at,
        order_id="order-k",
        payment_id=payment_id,
        provider="mercadopago",
        amount=Money.parse("10.00", "BRL"),
        payment_version=1,
        correlation_id="c",
        approved_at=approved_at,
    )


def _paid_by_keeper(keeper_at: datetime) -> tuple[Order, PaymentRecord]:
    order = Order("order-k", OrderStatus.PAID, Money.parse("10.00", "BRL"), "200", version=2)
    keeper = PaymentRecord(
        payment_id="200", order_id="order-k", last_version=1,
        last_status=PaymentStatus.APPROVED, outcome=Outcome.applied(), approved_at=keeper_at,
    )
    return order, keeper


def test_an_earlier_approval_arriving_late_displaces_the_keeper() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    order, keeper = _paid_by_keeper(t0 + timedelta(seconds=5))
    effect = apply_payment_event(order, None, _approval("300", t0), keeper)
    assert effect.order is not None and effect.order.paid_by == "300"
    assert effect.order.version == 3 and effect.order.status is OrderStatus.PAID
    assert effect.decided == Outcome.applied()
    assert effect.displaced is not None and effect.displaced.payment_id == "200"
    assert effect.displaced.outcome == Outcome.rejected(RejectionReason.ALREADY_PAID)


def test_a_later_approval_is_rejected_and_the_keeper_stays() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    order, keeper = _paid_by_keeper(t0)
    effect = apply_payment_event(order, None, _approval("300", t0 + timedelta(seconds=5)), keeper)
    assert effect.order == order and effect.displaced is None
    assert effect.decided == Outcome.rejected(RejectionReason.ALREADY_PAID)


def test_same_approval_time_keeps_the_lowest_id() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    order, keeper = _paid_by_keeper(t0)  # keeper id 200
    lower = apply_payment_event(order, None, _approval("150", t0), keeper)
    higher = apply_payment_event(order, None, _approval("250", t0), keeper)
    assert lower.displaced is not None and lower.order is not None
    assert lower.order.paid_by == "150"
    assert higher.displaced is None and higher.decided is not None
    assert higher.decided.reason is RejectionReason.ALREADY_PAID


# --- the first event an order sees, whatever its status --------------------------------

# (final order status, outcome decided, versions the order moves) per first status.
FIRST_EVENT: dict[PaymentStatus, tuple[OrderStatus, Outcome | None, int]] = {
    PS.APPROVED: (OS.PAID, Outcome.applied(), 1),
    PS.PENDING: (OS.PENDING_PAYMENT, None, 0),
    PS.IN_PROCESS: (OS.PENDING_PAYMENT, None, 0),
    PS.AUTHORIZED: (OS.PENDING_PAYMENT, None, 0),
    PS.REJECTED: (OS.PENDING_PAYMENT, None, 0),
    PS.CANCELLED: (OS.PENDING_PAYMENT, None, 0),
    PS.REFUNDED: (OS.REFUNDED, Outcome.applied(), 2),  # paid, then refunded
    PS.CHARGED_BACK: (OS.REFUNDED, Outcome.applied(), 2),
    PS.IN_MEDIATION: (OS.PAID, Outcome.applied(), 1),
}


def test_first_event_table_covers_every_status() -> None:
    assert set(FIRST_EVENT) == set(PaymentStatus)


@pytest.mark.parametrize("status", list(FIRST_EVENT), ids=[s.value for s in FIRST_EVENT])
def test_any_status_as_the_first_event_reaches_its_final_state(status: PaymentStatus) -> None:
    final, outcome, steps = FIRST_EVENT[status]
    before = order()
    effect = apply_payment_event(before, None, event(status, 1))
    assert effect.order is not None
    assert effect.order.status is final
    assert effect.decided == outcome
    # What the order's `save` must accept: possibly more than one step from what was read.
    assert effect.order.version == before.version + steps
    assert effect.record == record(status, 1, outcome)


# --- an amount finer than its currency: held for a person, never paid or refunded --------

ARS_TOTAL = Money.parse("25.12", "ARS")
INEXACT = InexactAmount("25.123", AmountProblem.PRECISION)
HELD = Outcome.rejected(RejectionReason.AMOUNT_PRECISION)


def inexact_event(status: PaymentStatus, version: int = 1) -> Envelope:
    return replace(event(status, version, amount=ARS_TOTAL), inexact_amount=INEXACT)


def ars_order(status: OrderStatus = OS.PENDING_PAYMENT, *, paid_by: str | None = None) -> Order:
    return Order("order-1", status, ARS_TOTAL, paid_by=paid_by, version=3)


@pytest.mark.parametrize("status", sorted(WAS_APPROVED), ids=lambda s: s.value)
def test_an_inexact_amount_holds_a_waiting_order_for_review(status: PaymentStatus) -> None:
    effect = apply_payment_event(ars_order(), None, inexact_event(status))
    assert effect.order is not None
    assert effect.order.status is OS.NEEDS_REVIEW
    assert effect.order.review_reason is RejectionReason.AMOUNT_PRECISION
    assert effect.order.paid_by is None
    assert effect.order.version == 4
    assert effect.decided == HELD
    assert effect.record.outcome == HELD


@pytest.mark.parametrize("status", [OS.PAID, OS.CANCELLED, OS.EXPIRED])
def test_an_inexact_amount_for_an_order_no_longer_waiting_is_held_not_refunded(
    status: OrderStatus,
) -> None:
    before = ars_order(status, paid_by="pay-0" if status is OS.PAID else None)
    effect = apply_payment_event(before, None, inexact_event(PS.APPROVED))
    assert effect.order == before
    assert effect.decided == HELD  # not already_paid / order_cancelled: those are refunded


def test_an_inexact_amount_for_an_unknown_order_is_held() -> None:
    effect = apply_payment_event(None, None, inexact_event(PS.APPROVED))
    assert effect.order is None and effect.decided == HELD


def test_an_inexact_earlier_approval_never_displaces_the_keeper() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    paid = Order("order-1", OS.PAID, ARS_TOTAL, paid_by="200", version=2)
    keeper = PaymentRecord("200", "order-1", 1, PS.APPROVED, Outcome.applied(), t0)
    early = replace(inexact_event(PS.APPROVED), payment_id="100", approved_at=t0 - timedelta(1))
    effect = apply_payment_event(paid, None, early, keeper)
    assert effect.displaced is None
    assert effect.order == paid
    assert effect.decided == HELD


def test_an_inexact_pending_payment_decides_nothing_yet() -> None:
    effect = apply_payment_event(ars_order(), None, inexact_event(PS.PENDING))
    assert effect.order == ars_order() and effect.decided is None


def test_leaving_review_drops_its_reason() -> None:
    held = ars_order().hold_for_review(RejectionReason.AMOUNT_PRECISION)
    assert held.review_reason is RejectionReason.AMOUNT_PRECISION
    assert held.move_to(OS.PAID).review_reason is None


def test_every_amount_problem_has_its_rejection_reason() -> None:
    for problem in AmountProblem:
        assert RejectionReason(problem.value)


@pytest.mark.parametrize("policy", list(MismatchPolicy))
def test_an_amount_precision_rejection_is_held_whatever_the_mismatch_policy(
    policy: MismatchPolicy,
) -> None:
    assert action_for(RejectionReason.AMOUNT_PRECISION, policy) is RefundAction.HOLD
