"""The payments database: notifications, payments, checkouts and refunds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from payrelay.domain.checkout import Checkout
from payrelay.domain.events import Envelope
from payrelay.domain.payment import Payment
from payrelay.domain.refund import RefundRequest
from payrelay.ports.messaging import MessagingTx


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """A webhook as recorded: identifiers only, never the body's claims about the payment."""

    dedupe_key: str
    provider: str
    topic: str
    action: str | None
    resource_id: str | None
    request_id: str | None
    received_at: datetime
    ignored: bool
    due_at: datetime | None = None
    """When the processor may fetch the payment; None: at once (`received_at`)."""
    order_hint: str | None = None
    """The order id the notification_url carried (unsigned: for the trace and logs only)."""



class NotificationLog(Protocol):
    async def record(self, notification: NotificationRecord) -> bool:
        """Durably store; False if the same `dedupe_key` was already recorded.

        A duplicate changes nothing in the stored row (not its due time either): callers
        that merge deliveries under one key rely on the first row standing. Each call, new
        or duplicate, also writes its `notification.received` / `notification.duplicate`
        timeline row in the same commit, so `payrelay trace` sees every delivery.
        """
        ...



class Notifications(Protocol):
    async def record(self, notification: NotificationRecord) -> bool:
        """Store in this transaction; False if its `dedupe_key` is already recorded."""
        ...

    async def mark_processed(self, ids: Sequence[int], *, now: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class PaymentSave:
    """A payment to write, and the version its caller read (None: it found none)."""

    payment: Payment
    expected_version: int | None


class Payments(Protocol):
    async def get(self, payment_id: str) -> Payment | None: ...

    async def get_many(self, payment_ids: Sequence[str]) -> Mapping[str, Payment]:
        """Those that exist, locked in payment id order (see reconciliation.py)."""
        ...

    async def save(
        self, payment: Payment, *, expected_version: int | None, now: datetime
    ) -> None:
        """Insert or update, if the stored version is still `expected_version`: the one
        `get` returned (None: it found no payment). Otherwise raise ConcurrentUpdate,
        having written nothing; two processors racing on a new payment meet here."""
        ...

    async def save_many(self, saves: Sequence[PaymentSave], *, now: datetime) -> set[str]:
        """`save` for a batch, one payment once, in a statement or two. Returns the ids of
        those another writer moved on first: nothing of them is written, the rest is."""
        ...

    async def record_outcome(self, envelope: Envelope, *, now: datetime) -> bool: ...

    async def record_outcomes(self, envelopes: Sequence[Envelope], *, now: datetime) -> None:
        """`record_outcome` for each, in the order given (a payment's later answer wins)."""
        ...



class Refunds(Protocol):
    async def request(self, refund: RefundRequest, *, hold: bool, now: datetime) -> bool:
        """Record the intent before any gateway call; False if one exists for the payment."""
        ...

    async def mark_succeeded(
        self, refund: RefundRequest, *, gateway_refund_id: str | None, now: datetime
    ) -> None: ...

    async def hold(self, refund: RefundRequest, *, error: str, now: datetime) -> None:
        """The gateway refused it for good: keep it for a person, never try again."""
        ...


class Checkouts(Protocol):
    async def get(self, order_id: str) -> Checkout | None: ...

    async def add(self, checkout: Checkout, *, now: datetime) -> Checkout:
        """Insert, or return the checkout a concurrent caller stored first."""
        ...



class PaymentsTx(MessagingTx, Protocol):
    @property
    def notifications(self) -> Notifications: ...
    @property
    def payments(self) -> Payments: ...
    @property
    def checkouts(self) -> Checkouts: ...
    @property
    def refunds(self) -> Refunds: ...


class PaymentsUnitOfWork(Protocol):
    def begin(self) -> AbstractAsyncContextManager[PaymentsTx, bool | None]: ...
