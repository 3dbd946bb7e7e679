"""The payment state machine: the transition table, pinned pair by pair, and apply_snapshot."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payrelay.domain.errors import IllegalTransition
from payrelay.domain.money import Money
from payrelay.domain.payment import (
    TERMINAL,
    TRANSITIONS,
    Payment,
    PaymentSnapshot,
    PaymentStatus,
    SnapshotVerdict,
    apply_snapshot,
    can_transition,
    transition,
)

S = PaymentStatus
T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)

# The machine as the docs describe it, written out independently of src so that an
# accidental edit of TRANSITIONS fails here instead of silently changing behaviour.
ALLOWED: frozenset[tuple[PaymentStatus, PaymentStatus]] = frozenset(
    {
        (S.PENDING, S.IN_PROCESS),
        (S.PENDING, S.AUTHORIZED),
        (S.PENDING, S.APPROVED),
        (S.PENDING, S.REJECTED),
        (S.PENDING, S.CANCELLED),
        (S.IN_PROCESS, S.PENDING),
        (S.IN_PROCESS, S.AUTHORIZED),
        (S.IN_PROCESS, S.APPROVED),
        (S.IN_PROCESS, S.REJECTED),
        (S.IN_PROCESS, S.CANCELLED),
        (S.AUTHORIZED, S.APPROVED),
        (S.AUTHORIZED, S.CANCELLED),
        (S.AUTHORIZED, S.REJECTED),
        (S.APPROVED, S.REFUNDED),
        (S.APPROVED, S.CHARGED_BACK),
        (S.APPROVED, S.IN_MEDIATION),
        (S.IN_MEDIATION, S.APPROVED),
        (S.IN_MEDIATION, S.REFUNDED),
        (S.IN_MEDIATION, S.CHARGED_BACK),
    }
)
EXPECTED_TERMINAL = frozenset({S.REJECTED, S.CANCELLED, S.REFUNDED, S.CHARGED_BACK})
ALL_PAIRS = list(itertools.product(PaymentStatus, PaymentStatus))


def _pair_id(pair: tuple[PaymentStatus, PaymentStatus]) -> str:
    return f"{pair[0].value}->{pair[1].value}"


def snapshot(
    status: PaymentStatus,
    updated: datetime = T0,
    *,
    detail: str | None = None,
    payment_id: str = "pay-1",
) -> PaymentSnapshot:
    return PaymentSnapshot(
        payment_id=payment_id,
        provider="mercadopago",
        order_id="order-1",
        status=status,
        status_detail=detail,
        amount=Money.parse("10.00", "BRL"),
        amount_refunded=Money.parse("0.00", "BRL"),
        date_created=T0,
        date_approved=None,
        date_last_updated=updated,
    )


# --- the table ------------------------------------------------------------------------


def test_table_has_a_row_for_every_status() -> None:
    assert set(TRANSITIONS) == set(PaymentStatus)


def test_table_is_exactly_the_documented_machine() -> None:
    actual = {(current, target) for current, targets in TRANSITIONS.items() for target in targets}
    assert actual == ALLOWED


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS, ids=[_pair_id(p) for p in ALL_PAIRS])
def test_can_transition_and_transition_agree_with_the_table(
    current: PaymentStatus, target: PaymentStatus
) -> None:
    allowed = (current, target) in ALLOWED
    assert can_transition(current, target) is allowed
    if allowed:
        assert transition(current, target) is target
    else:
        with pytest.raises(IllegalTransition) as info:
            transition(current, target)
        assert (info.value.machine, info.value.current, info.value.target) == (
            "payment",
            current,
            target,
        )


def test_no_status_moves_to_itself() -> None:
    assert not any(can_transition(status, status) for status in PaymentStatus)


def test_terminal_statuses_are_the_documented_ones() -> None:
    assert TERMINAL == EXPECTED_TERMINAL


@pytest.mark.parametrize("terminal", sorted(EXPECTED_TERMINAL))
def test_terminal_status_has_no_exit(terminal: PaymentStatus) -> None:
    for target in PaymentStatus:
        assert not can_transition(terminal, target)
        with pytest.raises(IllegalTransition):
            transition(terminal, target)


# --- apply_snapshot -------------------------------------------------------------------


def test_first_snapshot_is_new_at_version_one() -> None:
    first = snapshot(S.PENDING)
    result = apply_snapshot(None, first)
    assert result.verdict is SnapshotVerdict.NEW
    assert result.payment == Payment(first, 1)
    assert result.status_changed


def test_legal_change_bumps_the_version_by_one() -> None:
    stored = Payment(snapshot(S.PENDING), version=4)
    approved = snapshot(S.APPROVED, T0 + timedelta(seconds=1))
    result = apply_snapshot(stored, approved)
    assert result.verdict is SnapshotVerdict.CHANGED
    assert result.payment == Payment(approved, 5)
    assert result.status_changed


def test_same_snapshot_again_is_unchanged() -> None:
    stored = Payment(snapshot(S.APPROVED), version=2)
    result = apply_snapshot(stored, snapshot(S.APPROVED))
    assert result.verdict is SnapshotVerdict.UNCHANGED
    assert result.payment is None
    assert not result.status_changed


def test_same_status_with_newer_details_is_refreshed_at_the_same_version() -> None:
    stored = Payment(snapshot(S.IN_PROCESS, detail="pending_review_manual"), version=3)
    newer = snapshot(S.IN_PROCESS, T0 + timedelta(minutes=5), detail="pending_contingency")
    result = apply_snapshot(stored, newer)
    assert result.verdict is SnapshotVerdict.REFRESHED
    assert result.payment == Payment(newer, 3)
    assert not result.status_changed


def test_older_snapshot_is_stale() -> None:
    stored = Payment(snapshot(S.APPROVED, T0 + timedelta(minutes=1)), version=2)
    result = apply_snapshot(stored, snapshot(S.PENDING, T0))
    assert result.verdict is SnapshotVerdict.STALE
    assert result.payment is None
    assert not result.status_changed


def test_older_snapshot_with_a_legal_next_status_is_still_stale() -> None:
    stored = Payment(snapshot(S.PENDING, T0 + timedelta(minutes=1)), version=1)
    result = apply_snapshot(stored, snapshot(S.APPROVED, T0))
    assert result.verdict is SnapshotVerdict.STALE


def test_illegal_move_with_a_newer_date_is_stale() -> None:
    stored = Payment(snapshot(S.APPROVED, T0), version=2)
    result = apply_snapshot(stored, snapshot(S.PENDING, T0 + timedelta(minutes=1)))
    assert result.verdict is SnapshotVerdict.STALE
    assert result.payment is None


def test_newer_snapshot_that_skipped_intermediate_statuses_is_applied() -> None:
    """pending -> approved -> in_mediation happened between two fetches.

    The gateway's newer snapshot is the truth and in_mediation is reachable from pending
    through approved, so it must be applied; dropping it as stale leaves a captured payment
    looking pending forever (its order is never paid).
    """
    stored = Payment(snapshot(S.PENDING, T0), version=1)
    later = snapshot(S.IN_MEDIATION, T0 + timedelta(minutes=1))
    result = apply_snapshot(stored, later)
    assert result.verdict is SnapshotVerdict.CHANGED
    assert result.payment == Payment(later, 2)


# --- any arrival order ----------------------------------------------------------------


@st.composite
def legal_paths(draw: st.DrawFn) -> list[PaymentStatus]:
    """A status path that follows TRANSITIONS from any start, 1 to 8 statuses long."""
    path = [draw(st.sampled_from(list(PaymentStatus)))]
    length = draw(st.integers(min_value=1, max_value=8))
    while len(path) < length and TRANSITIONS[path[-1]]:
        path.append(draw(st.sampled_from(sorted(TRANSITIONS[path[-1]]))))
    return path


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[PaymentStatus], list[int]]:
    """(a legal path, the order its snapshots arrive in: each at least once, some twice)."""
    path = draw(legal_paths())
    steps = list(range(len(path)))
    arrivals = steps + draw(st.lists(st.sampled_from(steps), max_size=len(path) * 2))
    return path, draw(st.permutations(arrivals))


def _path_snapshots(path: list[PaymentStatus]) -> list[PaymentSnapshot]:
    """One snapshot per step, each strictly later than the one before."""
    return [
        snapshot(status, T0 + timedelta(seconds=i), detail=f"step {i}")
        for i, status in enumerate(path)
    ]


@settings(max_examples=200, deadline=None)
@given(deliveries())
def test_any_arrival_order_ends_at_the_newest_snapshot(
    case: tuple[list[PaymentStatus], list[int]],
) -> None:
    path, arrivals = case
    snapshots = _path_snapshots(path)
    stored: Payment | None = None
    verdicts = []
    for step in arrivals:
        result = apply_snapshot(stored, snapshots[step])
        verdicts.append(result.verdict)
        if result.payment is not None:
            stored = result.payment
    assert stored is not None
    assert stored.snapshot == snapshots[max(arrivals)]
    # Every accepted change is one step along the path, so the version cannot exceed the
    # number of snapshots in it (a path may revisit a status: pending -> in_process -> pending).
    assert 1 <= stored.version <= len(path)
    if arrivals[0] == max(arrivals):
        assert set(verdicts[1:]) <= {SnapshotVerdict.STALE, SnapshotVerdict.UNCHANGED}
        assert stored.version == 1


@settings(max_examples=200, deadline=None)
@given(legal_paths())
def test_in_order_delivery_changes_once_per_step(path: list[PaymentStatus]) -> None:
    stored: Payment | None = None
    for i, status in enumerate(path):
        result = apply_snapshot(stored, snapshot(status, T0 + timedelta(seconds=i)))
        assert result.verdict is (SnapshotVerdict.NEW if i == 0 else SnapshotVerdict.CHANGED)
        stored = result.payment
    assert stored is not None
    assert stored.status is path[-1]
    assert stored.version == len(path)


def test_same_date_and_status_with_a_new_detail_only_refreshes() -> None:
    stored = Payment(snapshot(S.APPROVED, T0, detail="accredited"), version=2)
    result = apply_snapshot(stored, replace(stored.snapshot, status_detail="partially_refunded"))
    assert result.verdict is SnapshotVerdict.REFRESHED
    assert result.payment is not None
    assert result.payment.version == 2
