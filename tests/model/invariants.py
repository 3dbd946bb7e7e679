"""What must hold after every step of the protocol, and what must hold once it settled.

Each check reads `Facts` (both databases' rows) and, where it needs the truth, the
gateway's own snapshots, which payrelay never writes. A check raises AssertionError with
what it found, for hypothesis to shrink and print.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from typing import Any

from payrelay.domain.events import EventType
from payrelay.domain.order import OrderStatus
from payrelay.domain.payment import PaymentSnapshot, PaymentStatus
from payrelay.domain.work import NotificationStatus, OutboxStatus, RefundStatus
from tests.contract.builders import TEN
from tests.model.world import Facts

APPLIED = EventType.ORDER_PAYMENT_APPLIED.value
REJECTED = EventType.ORDER_PAYMENT_REJECTED.value
DECIDED = (APPLIED, REJECTED)


def keeper_key(snapshot: PaymentSnapshot) -> tuple[datetime, int]:
    """The keeper rule as the gateway's truth has it: earliest approval, then lowest id."""
    assert snapshot.date_approved is not None
    return snapshot.date_approved, int(snapshot.payment_id)


def pays_in_full(snapshot: PaymentSnapshot) -> bool:
    return snapshot.status is PaymentStatus.APPROVED and snapshot.amount.same_value(TEN)


def each_message_applied_once(f: Facts) -> None:
    """No message is applied twice: each payment has no more timeline rows of applied
    events on the consuming side than distinct messages about it in the producing side's
    outbox; a payment pays an order at most once; an order's version counts its moves."""
    _at_most_once("order side", f.orders_timeline, f.payments_outbox, _is_payment_step)
    _at_most_once("payments side", f.payments_timeline, f.orders_outbox,
                  lambda step: step.startswith("outcome."))
    applied = [r for r in f.orders_timeline if r.step == APPLIED]
    twice = _repeated(r.payment_id for r in applied)
    assert not twice, f"payments applied to their order more than once: {twice}"
    for order in f.orders.values():
        moves = sum(1 for r in applied if r.order_id == order.order_id)
        assert order.version == 1 + moves, (
            f"order {order.order_id} is at version {order.version} after {moves} "
            "applied payments")


def _at_most_once(
    side: str, timeline: Iterable[Any], outbox: Iterable[Any], counts: Callable[[str], bool]
) -> None:
    applied = Counter(r.payment_id for r in timeline if counts(r.step))
    sent = Counter(r.payment_id for r in outbox)  # one row per message id (unique)
    twice = {p: (n, sent[p]) for p, n in applied.items() if n > sent[p]}
    assert not twice, (
        f"{side}: payments with more messages applied than were ever sent (applied, sent): "
        f"{twice}")


def _is_payment_step(step: str) -> bool:
    """A timeline row the order consumer writes for one applied payment event."""
    return step in DECIDED or step.startswith(("seen.", "stale."))


def paid_once_by_the_keeper(f: Facts, gateway: dict[str, PaymentSnapshot]) -> None:
    """An order is paid by at most one payment, and it is the keeper-rule winner among the
    full approvals its side has seen; every decision has its answer in the outbox."""
    for order in f.orders.values():
        records = [r for r in f.records.values() if r.order_id == order.order_id]
        applied = sorted(r.payment_id for r in records if r.outcome == APPLIED)
        paid_by = [order.paid_by] if order.status == OrderStatus.PAID else []
        assert applied == paid_by, (
            f"order {order.order_id} ({order.status}, paid_by {order.paid_by}): payments "
            f"recorded as applied {applied}")
        seen = [gateway[r.payment_id] for r in records
                if r.last_status == PaymentStatus.APPROVED and pays_in_full(gateway[r.payment_id])]
        if seen:
            keeper = min(seen, key=keeper_key).payment_id
            assert order.paid_by == keeper, (
                f"order {order.order_id} is paid by {order.paid_by}, the keeper rule says "
                f"{keeper} of {sorted(s.payment_id for s in seen)}")
    answers = {(r.payment_id, r.routing_key) for r in f.orders_outbox}
    for record in f.records.values():
        if record.outcome is not None:
            assert (record.payment_id, record.outcome) in answers, (
                f"the order side decided {record.outcome} for {record.payment_id} and "
                "wrote no answer for it")


def nothing_lost(
    f: Facts, *, in_order_queue: Collection[str], in_payments_queue: Collection[str]
) -> None:
    """A row marked sent is in its queue or in its consumer's inbox; an approval the
    payments side recorded is on its way (a live outbox row) or was seen by the order side."""
    _sent_rows_arrived("payments outbox", f.payments_outbox, in_order_queue,
                       {r.message_id for r in f.orders_inbox})
    _sent_rows_arrived("orders outbox", f.orders_outbox, in_payments_queue,
                       {r.message_id for r in f.payments_inbox})
    events = {(r.payment_id, r.routing_key) for r in f.payments_outbox
              if r.status in (OutboxStatus.PENDING, OutboxStatus.SENT)}
    for payment in f.payments.values():
        if payment.status != PaymentStatus.APPROVED:
            continue
        record = f.records.get(payment.payment_id)
        seen = record is not None and record.last_status == PaymentStatus.APPROVED
        assert seen or (payment.payment_id, EventType.PAYMENT_APPROVED.value) in events, (
            f"payment {payment.payment_id} is approved, no event of it is on its way and "
            "the order side never saw it")


def _sent_rows_arrived(
    name: str, rows: Iterable[Any], queued: Collection[str], inbox: Collection[str]
) -> None:
    for row in rows:
        assert row.status != OutboxStatus.DEAD, f"{name}: {row.message_id} is dead"
        if row.status == OutboxStatus.SENT:
            assert row.message_id in queued or row.message_id in inbox, (
                f"{name}: {row.routing_key} {row.message_id} of {row.payment_id} is marked "
                "sent, but it is neither queued nor in its consumer's inbox")


def refunds_are_owed(f: Facts) -> None:
    """A refund is asked for once, for a payment its order rejected, never for the payment
    that pays the order."""
    for payment_id, refund in f.refunds.items():
        payment = f.payments[payment_id]
        assert payment.order_outcome == REJECTED, (
            f"refund of {payment_id}, whose recorded outcome is {payment.order_outcome}")
        order = f.orders[refund.order_id]
        assert order.paid_by != payment_id, (
            f"refund of {payment_id}, which pays order {order.order_id}")
    asked = Counter(r.payment_id for r in f.payments_timeline if r.step.startswith("refund."))
    assert asked == Counter(list(f.refunds)), (
        f"refund timeline rows {dict(asked)} for the refunds {sorted(f.refunds)}")


def settled(f: Facts, gateway: dict[str, PaymentSnapshot]) -> None:
    """Once drained: nothing waits, every gateway status is applied, each order is paid by
    its keeper, every other approved payment is rejected with a refund asked for."""
    waiting = {k: v for k, v in f.notifications.items() if k != NotificationStatus.PROCESSED}
    assert not waiting, f"notifications not processed: {waiting}"
    for name, rows in (("payments", f.payments_outbox), ("orders", f.orders_outbox)):
        stuck = [(r.routing_key, r.payment_id, r.status) for r in rows
                 if r.status != OutboxStatus.SENT]
        assert not stuck, f"{name} outbox rows not sent after the drain: {stuck}"
    assert not f.payments_dead and not f.orders_dead, "dead letters after the drain"
    for snapshot in gateway.values():
        stored = f.payments[snapshot.payment_id]
        assert stored.status == snapshot.status, (
            f"payment {snapshot.payment_id} is {stored.status}, the gateway says "
            f"{snapshot.status}")
    for order in f.orders.values():
        _order_settled(f, order, [s for s in gateway.values() if s.order_id == order.order_id])


def _order_settled(f: Facts, order: Any, snapshots: list[PaymentSnapshot]) -> None:
    full = [s for s in snapshots if pays_in_full(s)]
    keeper = min(full, key=keeper_key).payment_id if full else None
    expected = OrderStatus.PAID if keeper else OrderStatus.PENDING_PAYMENT
    assert (order.status, order.paid_by) == (expected, keeper), (
        f"order {order.order_id} is {order.status} paid by {order.paid_by}, expected "
        f"{expected} by {keeper}")
    for snapshot in snapshots:
        pid, payment = snapshot.payment_id, f.payments[snapshot.payment_id]
        if pid == keeper:
            assert payment.order_outcome == APPLIED and pid not in f.refunds, (
                f"keeper {pid}: outcome {payment.order_outcome}, refund {pid in f.refunds}")
        elif snapshot.status is PaymentStatus.APPROVED:
            refund = f.refunds.get(pid)
            assert payment.order_outcome == REJECTED and refund is not None, (
                f"surplus {pid} of order {order.order_id}: outcome "
                f"{payment.order_outcome}, refund {refund}")
            assert refund.status in (RefundStatus.REQUESTED, RefundStatus.HELD)
        else:
            assert payment.order_outcome is None and pid not in f.refunds, (
                f"unapproved {pid}: outcome {payment.order_outcome}, refund {pid in f.refunds}")


def _repeated(items: Iterable[str]) -> list[str]:
    return sorted(k for k, n in Counter(items).items() if n > 1)
