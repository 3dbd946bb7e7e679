"""The payments database in memory: notifications, payments, checkouts, refunds, messages."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from payrelay.adapters.memory.messaging import (
    MemoryDeadLetters,
    MemoryInbox,
    MemoryOutbox,
    MemoryOutboxRelayStore,
    MemoryTimeline,
    MessagingState,
)
from payrelay.adapters.memory.store import MemoryDatabase
from payrelay.adapters.memory.work import WorkRow
from payrelay.domain.errors import ConcurrentUpdate
from payrelay.domain.events import Envelope
from payrelay.domain.payment import Payment
from payrelay.domain.work import NotificationStatus, RefundStatus
from payrelay.ports import Checkout, Clock, NotificationRecord, PaymentSave, RefundRequest


@dataclasses.dataclass(frozen=True, kw_only=True)
class NotificationRow(WorkRow):
    id: int
    record: NotificationRecord
    processed_at: datetime | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class PaymentRow:
    payment: Payment
    updated_at: datetime
    order_outcome: str | None = None
    outcome_reason: str | None = None
    outcome_at: datetime | None = None
    outcome_order_version: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class CheckoutRow:
    checkout: Checkout
    created_at: datetime
    reconciled_at: datetime | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class RefundRow(WorkRow):
    request: RefundRequest
    created_at: datetime
    updated_at: datetime
    gateway_refund_id: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReportRow:
    started_at: datetime
    finished_at: datetime
    report: dict[str, Any]


@dataclasses.dataclass
class PaymentsState(MessagingState):
    notifications: dict[int, NotificationRow] = dataclasses.field(default_factory=dict)
    dedupe_keys: dict[str, int] = dataclasses.field(default_factory=dict)
    payments: dict[str, PaymentRow] = dataclasses.field(default_factory=dict)
    checkouts: dict[str, CheckoutRow] = dataclasses.field(default_factory=dict)
    refunds: dict[str, RefundRow] = dataclasses.field(default_factory=dict)
    reports: list[ReportRow] = dataclasses.field(default_factory=list)
    sweep_watermarks: dict[str, datetime] = dataclasses.field(default_factory=dict)
    next_notification_id: int = 1

    def record_notification(self, n: NotificationRecord) -> bool:
        """Insert unless the dedupe key is taken; a duplicate changes nothing stored."""
        if n.dedupe_key in self.dedupe_keys:
            return False
        row_id = self.next_notification_id
        self.next_notification_id += 1
        status = NotificationStatus.IGNORED if n.ignored else NotificationStatus.RECEIVED
        self.notifications[row_id] = NotificationRow(
            id=row_id, record=n, status=status, next_attempt_at=n.due_at or n.received_at
        )
        self.dedupe_keys[n.dedupe_key] = row_id
        return True


PaymentsDatabase = MemoryDatabase[PaymentsState]


def payments_database() -> PaymentsDatabase:
    return MemoryDatabase(PaymentsState())


class MemoryNotificationLog:
    """Each record is its own transaction: durable (in this process) once it returns."""

    def __init__(self, db: PaymentsDatabase) -> None:
        self._db = db

    async def record(self, notification: NotificationRecord) -> bool:
        async with self._db.transaction() as state:
            is_new = state.record_notification(notification)
            n = notification  # the delivery's timeline row, as SqlNotificationLog writes it
            hint = f"; order hint {n.order_hint}" if n.order_hint else ""
            await MemoryTimeline(state).record(
                "notification.received" if is_new else "notification.duplicate",
                at=n.received_at, order_id=None, payment_id=n.resource_id,
                detail=f"{n.topic} {n.action or ''}".strip() + hint,
            )
            return is_new

    async def close(self) -> None:
        return None


class MemoryNotifications:
    def __init__(self, state: PaymentsState) -> None:
        self._state = state

    async def record(self, notification: NotificationRecord) -> bool:
        return self._state.record_notification(notification)

    async def mark_processed(self, ids: Sequence[int], *, now: datetime) -> None:
        rows = self._state.notifications
        for row_id in ids:
            if row_id in rows:
                rows[row_id] = dataclasses.replace(
                    rows[row_id], status=NotificationStatus.PROCESSED, processed_at=now
                )


class MemoryPayments:
    def __init__(self, state: PaymentsState) -> None:
        self._state = state

    async def get(self, payment_id: str) -> Payment | None:
        row = self._state.payments.get(payment_id)
        return None if row is None else row.payment

    async def get_many(self, payment_ids: Sequence[str]) -> Mapping[str, Payment]:
        rows = self._state.payments
        return {p: rows[p].payment for p in payment_ids if p in rows}

    async def save_many(self, saves: Sequence[PaymentSave], *, now: datetime) -> set[str]:
        lost = set()
        for save in saves:
            try:
                await self.save(save.payment, expected_version=save.expected_version, now=now)
            except ConcurrentUpdate:
                lost.add(save.payment.payment_id)
        return lost

    async def save(
        self, payment: Payment, *, expected_version: int | None, now: datetime
    ) -> None:
        stored = self._state.payments.get(payment.payment_id)
        # The SQL upsert's rule: a new payment expects no row; a known one, its version.
        if (stored.payment.version if stored else None) != expected_version:
            raise ConcurrentUpdate(
                f"payment {payment.payment_id} is no longer at version {expected_version}"
            )
        if stored is None:
            stored = PaymentRow(payment=payment, updated_at=now)
        self._state.payments[payment.payment_id] = dataclasses.replace(
            stored, payment=payment, updated_at=now
        )

    async def record_outcome(self, envelope: Envelope, *, now: datetime) -> bool:
        """Store the order side's decision, unless a later decision is already stored."""
        row = self._state.payments.get(envelope.payment_id)
        version = envelope.order_version or 0
        if row is None or (row.outcome_order_version or 0) > version:
            return False
        self._state.payments[envelope.payment_id] = dataclasses.replace(
            row,
            order_outcome=envelope.type.value,
            outcome_reason=envelope.reason.value if envelope.reason else None,
            outcome_at=now,
            outcome_order_version=version,
        )
        return True

    async def record_outcomes(self, envelopes: Sequence[Envelope], *, now: datetime) -> None:
        for envelope in envelopes:
            await self.record_outcome(envelope, now=now)


class MemoryCheckouts:
    def __init__(self, state: PaymentsState) -> None:
        self._state = state

    async def get(self, order_id: str) -> Checkout | None:
        row = self._state.checkouts.get(order_id)
        return None if row is None else row.checkout

    async def add(self, checkout: Checkout, *, now: datetime) -> Checkout:
        row = self._state.checkouts.setdefault(
            checkout.order_id, CheckoutRow(checkout=checkout, created_at=now)
        )
        return row.checkout


class MemoryRefunds:
    def __init__(self, state: PaymentsState) -> None:
        self._state = state

    async def request(self, refund: RefundRequest, *, hold: bool, now: datetime) -> bool:
        if refund.payment_id in self._state.refunds:  # one refund per payment, ever
            return False
        self._state.refunds[refund.payment_id] = RefundRow(
            request=dataclasses.replace(refund, attempts=0, failures=0, created_at=now),
            status=RefundStatus.HELD if hold else RefundStatus.REQUESTED,
            next_attempt_at=now, created_at=now, updated_at=now,
        )
        return True

    async def mark_succeeded(
        self, refund: RefundRequest, *, gateway_refund_id: str | None, now: datetime
    ) -> None:
        row = self._state.refunds.get(refund.payment_id)
        if row is not None:
            self._state.refunds[refund.payment_id] = dataclasses.replace(
                row, status=RefundStatus.SUCCEEDED, gateway_refund_id=gateway_refund_id,
                updated_at=now,
            )

    async def hold(self, refund: RefundRequest, *, error: str, now: datetime) -> None:
        row = self._state.refunds.get(refund.payment_id)
        if row is not None and row.status == RefundStatus.REQUESTED:
            self._state.refunds[refund.payment_id] = dataclasses.replace(
                row, status=RefundStatus.HELD, last_error=error[:500], updated_at=now
            )


class MemoryPaymentsTx:
    """Every repository of one transaction, all bound to the same draft."""

    def __init__(self, state: PaymentsState, now: datetime) -> None:
        self.state = state
        self.notifications = MemoryNotifications(state)
        self.payments = MemoryPayments(state)
        self.checkouts = MemoryCheckouts(state)
        self.refunds = MemoryRefunds(state)
        self.outbox = MemoryOutbox(state, now=now)
        self.inbox = MemoryInbox(state)
        self.timeline = MemoryTimeline(state)
        self.dead_letters = MemoryDeadLetters(state)


class MemoryPaymentsUnitOfWork:
    def __init__(self, db: PaymentsDatabase, clock: Clock) -> None:
        self.db = db
        self._clock = clock
        self.relay_store = MemoryOutboxRelayStore(db)

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[MemoryPaymentsTx]:
        async with self.db.transaction() as state:
            yield MemoryPaymentsTx(state, self._clock())
