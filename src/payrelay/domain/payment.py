"""The payment state machine over MercadoPago's statuses, with a monotonic version.

A payment's facts always come from the gateway (never from a webhook body). Each snapshot
the gateway returns carries `date_last_updated`; a snapshot older than the one already
applied, or one whose status could not follow the current one, is stale and ignored, so
notifications that arrive twice or out of order change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from payrelay.domain.errors import IllegalTransition
from payrelay.domain.money import InexactAmount, Money


class PaymentStatus(StrEnum):
    PENDING = "pending"
    """Created, waiting for the customer or the payment method (e.g. a cash voucher)."""
    IN_PROCESS = "in_process"
    """Under review by the gateway."""
    AUTHORIZED = "authorized"
    """Authorized, not captured yet."""
    APPROVED = "approved"
    """Money captured: the order may be marked paid."""
    REJECTED = "rejected"
    """Refused; the customer may try again with a new payment."""
    CANCELLED = "cancelled"
    """Cancelled or expired before approval."""
    REFUNDED = "refunded"
    """Money returned to the customer."""
    CHARGED_BACK = "charged_back"
    """The card issuer took the money back."""
    IN_MEDIATION = "in_mediation"
    """A dispute is open."""


S = PaymentStatus
TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    S.PENDING: frozenset({S.IN_PROCESS, S.AUTHORIZED, S.APPROVED, S.REJECTED, S.CANCELLED}),
    S.IN_PROCESS: frozenset({S.PENDING, S.AUTHORIZED, S.APPROVED, S.REJECTED, S.CANCELLED}),
    S.AUTHORIZED: frozenset({S.APPROVED, S.CANCELLED, S.REJECTED}),
    S.APPROVED: frozenset({S.REFUNDED, S.CHARGED_BACK, S.IN_MEDIATION}),
    S.IN_MEDIATION: frozenset({S.APPROVED, S.REFUNDED, S.CHARGED_BACK}),
    S.REJECTED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REFUNDED: frozenset(),
    S.CHARGED_BACK: frozenset(),
}

TERMINAL: frozenset[PaymentStatus] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
UNSETTLED: frozenset[PaymentStatus] = frozenset({S.PENDING, S.IN_PROCESS, S.AUTHORIZED})


def can_transition(current: PaymentStatus, target: PaymentStatus) -> bool:
    return target in TRANSITIONS[current]


def _reachable_from(start: PaymentStatus) -> frozenset[PaymentStatus]:
    seen: set[PaymentStatus] = set()
    frontier = [start]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return frozenset(seen)


# Between two fetches a payment may pass through several statuses (pending -> approved ->
# refunded); a newer snapshot is legal if its status can be reached at all.
REACHABLE: dict[PaymentStatus, frozenset[PaymentStatus]] = {s: _reachable_from(s) for s in S}


@dataclass(frozen=True, slots=True)
class PaymentSnapshot:
    """What the gateway says about a payment right now: the only source of truth.

    `inexact_amount` is set when the gateway wrote an amount finer than its currency allows
    (25.123 ARS): `amount` is then that value rounded toward zero to the minor unit, an
    approximation that must not pay an order, and `inexact_amount` keeps the text as written.
    """

    payment_id: str
    provider: str
    order_id: str | None  # the gateway's external_reference
    status: PaymentStatus
    status_detail: str | None
    amount: Money
    amount_refunded: Money
    date_created: datetime
    date_approved: datetime | None
    date_last_updated: datetime
    inexact_amount: InexactAmount | None = None


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment as payrelay last applied it; `version` grows by one per accepted change."""

    snapshot: PaymentSnapshot
    version: int

    @property
    def payment_id(self) -> str:
        return self.snapshot.payment_id

    @property
    def status(self) -> PaymentStatus:
        return self.snapshot.status


class SnapshotVerdict(StrEnum):
    NEW = "new"
    """First time payrelay sees this payment."""
    CHANGED = "changed"
    """A legal move to another status: version + 1 and an event."""
    REFRESHED = "refreshed"
    """Same status, newer details (e.g. status_detail): stored, no event."""
    UNCHANGED = "unchanged"
    """A duplicate of what is stored."""
    STALE = "stale"
    """Older than what is stored, or a move the machine forbids: ignored."""


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    verdict: SnapshotVerdict
    payment: Payment | None  # what to store; None when nothing changes
    status_changed: bool


def transition(current: PaymentStatus, target: PaymentStatus) -> PaymentStatus:
    if not can_transition(current, target):
        raise IllegalTransition("payment", current, target)
    return target


def apply_snapshot(current: Payment | None, snapshot: PaymentSnapshot) -> SnapshotResult:
    """Decide what a freshly fetched snapshot does to the stored payment."""
    if current is None:
        return SnapshotResult(SnapshotVerdict.NEW, Payment(snapshot, 1), status_changed=True)
    known = current.snapshot
    if snapshot.date_last_updated < known.date_last_updated:
        return SnapshotResult(SnapshotVerdict.STALE, None, status_changed=False)
    if snapshot.status == known.status:
        if snapshot == known:
            return SnapshotResult(SnapshotVerdict.UNCHANGED, None, status_changed=False)
        refreshed = replace(current, snapshot=snapshot)
        return SnapshotResult(SnapshotVerdict.REFRESHED, refreshed, status_changed=False)
    if snapshot.status not in REACHABLE[known.status]:
        return SnapshotResult(SnapshotVerdict.STALE, None, status_changed=False)
    changed = Payment(snapshot, current.version + 1)
    return SnapshotResult(SnapshotVerdict.CHANGED, changed, status_changed=True)
