"""The narrow interfaces services depend on; adapters implement them.

Repositories are bound to one open transaction (`PaymentsTx`, `OrdersTx`), so a service
that writes a state change and the event it causes does it in one commit by construction.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from payrelay.domain.events import Envelope
from payrelay.domain.money import Money
from payrelay.domain.order import Order, PaymentRecord
from payrelay.domain.payment import Payment, PaymentSnapshot
from payrelay.domain.retry import FailureKind, RetryDecision
from payrelay.domain.work import RefundStatus

Clock = Callable[[], datetime]
K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class FailedTry(Generic[K]):
    """One try of stored work that failed, and what `decide_retry` made of it.

    Every queue stores it the same way: a retry at `decision.retry_at` (counting a failure
    only when `decision.spends_attempt`), or, when the decision gave up, a dead state that
    keeps `decision.gave_up` and `error` for `payrelay dlq`."""

    work: K
    error: str
    decision: RetryDecision

# --- gateway -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkout:
    order_id: str
    provider: str
    preference_id: str
    init_point: str
    amount: Money


@dataclass(frozen=True, slots=True)
class PaymentPage:
    """One page of a gateway search: `total` counts the matches of every page together,
    `offset` is where this page starts among them."""

    payments: list[PaymentSnapshot]
    total: int
    offset: int
    unreadable: list[tuple[str, datetime]] = field(default_factory=list)
    """(id, date_last_updated) of results payrelay could not read otherwise: each is handed
    to the processor, whose retry decision gives it up with the reason, and the sweep
    moves past it, so one odd payment never stalls a sweep."""

    @property
    def dates(self) -> list[datetime]:
        """The last-update dates of every result of the page, read or not, in order."""
        return sorted([p.date_last_updated for p in self.payments]
                      + [when for _, when in self.unreadable])


class Gateway(Protocol):
    """A payment gateway's API, reduced to what payrelay asks of it.

    Every method raises GatewayUnavailable (worth retrying) or GatewayRejected (the gateway
    refused the request), never a client library's exception.
    """

    provider: str

    async def create_checkout(
        self, *, order_id: str, amount: Money, description: str, notification_url: str
    ) -> Checkout: ...

    async def fetch_payment(self, payment_id: str) -> PaymentSnapshot: ...

    async def search_payments(self, order_id: str) -> list[PaymentSnapshot]:
        """Every payment made for the order, oldest first: all pages are read, or it raises."""
        ...

    async def sweep_payments(
        self, *, updated_from: datetime, updated_to: datetime, offset: int, limit: int
    ) -> PaymentPage:
        """One page of the payments last updated within [updated_from, updated_to], both
        ends included, in ascending date_last_updated (ties always in the same order).

        `offset` skips that many of them; a new payment may be listed only some time after
        it was made, which the caller covers by reading again a little before where it was.
        """
        ...

    async def refund(self, payment_id: str, *, amount: Money, idempotency_key: str) -> str:
        """Refund `amount`; the same key never refunds twice. Returns the refund's id."""
        ...


# --- transport ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    message_id: uuid.UUID
    exchange: str
    routing_key: str
    correlation_id: str
    body: bytes
    attempts: int = 0
    """Earlier tries that did not count towards giving up (transport or consumer outages)."""
    refusals: int = 0
    """Earlier tries its consumer failed on in a way that counts (the retry schedule)."""
    order_id: str | None = None
    payment_id: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    message_id: str
    routing_key: str
    body: bytes
    redelivered: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an in-process consumer failed on a message, and what kind of failure it was."""

    error: str
    kind: FailureKind


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What became of a published batch.

    `confirmed`: safely delivered (broker holds it, or the in-process consumer committed).
    `refused`: the in-process consumer failed on it; the relay applies `decide_retry` to
    the refusal's kind. Anything in neither set met a transport problem and is retried for
    as long as it lasts, never dead-lettered for it.
    """

    confirmed: set[uuid.UUID]
    refused: dict[uuid.UUID, Refusal] = field(default_factory=dict)


BatchHandler = Callable[[Sequence[Delivery]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Subscription:
    queue: str
    exchange: str
    patterns: tuple[str, ...]  # topic patterns, e.g. ("payment.*",)


class Transport(Protocol):
    """Moves messages between the services; confirms only what is safely delivered."""

    async def publish(self, messages: Sequence[OutboundMessage]) -> PublishResult:
        """Publish a batch; only what comes back confirmed may be marked sent."""
        ...

    async def subscribe(self, subscription: Subscription, handler: BatchHandler) -> None:
        """Deliver matching messages to `handler`; a batch is acked only if it returns."""
        ...

    async def subscribe_dead_letters(
        self, subscription: Subscription, handler: BatchHandler
    ) -> None:
        """Deliver messages that `subscription`'s consumer gave up on, with headers
        x-payrelay-reason, x-payrelay-error, x-payrelay-attempts, x-payrelay-exchange.

        The in-process transport has none: its dead letters are written by the relay."""
        ...

    async def check(self) -> None:
        """Raise TransportUnavailable unless the transport can publish right now."""
        ...

    async def close(self) -> None: ...


# --- storage: the pieces both databases share -------------------------------------------


class Outbox(Protocol):
    async def add(self, envelope: Envelope, *, exchange: str) -> None: ...

    async def requeue(self, message_id: uuid.UUID) -> bool:
        """Send an already-written message again (same id), e.g. a repeated outcome."""
        ...


@dataclass(frozen=True, slots=True)
class SeenMessage:
    """An inbox entry: the message was applied; `reply_id` is the outcome sent back, if any."""

    reply_id: uuid.UUID | None


class Inbox(Protocol):
    async def seen(self, message_id: uuid.UUID) -> SeenMessage | None: ...

    async def redirect_replies(self, payment_id: str, reply_id: uuid.UUID) -> None:
        """A payment's outcome changed: redeliveries of its events repeat the new answer."""
        ...

    async def add(
        self, envelope: Envelope, *, received_at: datetime, reply_id: uuid.UUID | None
    ) -> None: ...


class Timeline(Protocol):
    async def record(
        self,
        step: str,
        *,
        at: datetime,
        order_id: str | None,
        payment_id: str | None,
        detail: str | None = None,
    ) -> None: ...


class DeadLetters(Protocol):
    async def add(
        self,
        delivery: Delivery,
        *,
        subscription: Subscription,
        reason: str,
        error: str,
        at: datetime,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message no consumer could apply, kept with why, for a person to inspect."""

    id: str  # "<where>-<n>": payments-/orders- (messages), notification-, refund-
    message_id: str | None
    exchange: str | None
    routing_key: str | None
    queue: str | None
    reason: str
    error: str | None
    attempts: int
    dead_at: datetime
    body: bytes
    order_id: str | None = None
    payment_id: str | None = None


class DeadLetterBox(Protocol):
    """Everything given up on, in both databases: dead messages, and the notifications and
    refunds `decide_retry` gave up on. Inspect, replay (idempotently), purge."""

    async def recent(self, *, limit: int = 100) -> list[DeadLetter]: ...

    async def get(self, dead_letter_id: str) -> DeadLetter | None: ...

    async def replay(self, dead_letter_ids: Sequence[str] | None) -> list[str]:
        """Send them again with their message ids (None: all). Returns the ids replayed."""
        ...

    async def purge(self, dead_letter_ids: Sequence[str]) -> list[str]: ...


class OutboxRelayStore(Protocol):
    """The relay's view of an outbox: each call is its own short transaction."""

    async def claim_due(
        self, *, limit: int, now: datetime, lease: timedelta
    ) -> list[OutboundMessage]: ...

    async def mark_sent(self, message_ids: Sequence[uuid.UUID], *, now: datetime) -> None: ...

    async def record_failures(
        self, failed: Sequence[FailedTry[OutboundMessage]], *, now: datetime
    ) -> None:
        """Retry each later (a spent attempt counts as a refusal), or park it as a dead
        letter with its reason, for a person."""
        ...


# --- storage: payments database ----------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class ClaimedNotification:
    id: int
    resource_id: str
    attempts: int
    """Earlier tries of any kind (they pace the backoff)."""
    failures: int = 0
    """Earlier tries that counted towards giving up."""
    received_at: datetime | None = None


class NotificationLog(Protocol):
    async def record(self, notification: NotificationRecord) -> bool:
        """Durably store; False if the same `dedupe_key` was already recorded.

        A duplicate changes nothing in the stored row (not its due time either): callers
        that merge deliveries under one key rely on the first row standing.
        """
        ...


class NotificationQueue(Protocol):
    async def claim_due(
        self, *, limit: int, now: datetime, lease: timedelta
    ) -> list[ClaimedNotification]: ...

    async def record_failures(
        self, failed: Sequence[FailedTry[ClaimedNotification]], *, now: datetime
    ) -> None:
        """Retry each later, or mark it dead with its reason (listed by `payrelay dlq`)."""
        ...

    async def postpone(self, ids: Sequence[int], *, until: datetime) -> None:
        """Make claimed notifications due again at `until`, without counting a try."""
        ...


class Payments(Protocol):
    async def get(self, payment_id: str) -> Payment | None: ...

    async def save(
        self, payment: Payment, *, expected_version: int | None, now: datetime
    ) -> None:
        """Insert or update, if the stored version is still `expected_version`: the one
        `get` returned (None: it found no payment). Otherwise raise ConcurrentUpdate,
        having written nothing; two processors racing on a new payment meet here."""
        ...

    async def record_outcome(self, envelope: Envelope, *, now: datetime) -> bool: ...


@dataclass(frozen=True, slots=True)
class RefundRequest:
    payment_id: str
    provider: str
    order_id: str
    amount: Money
    reason: str
    attempts: int = 0
    failures: int = 0
    created_at: datetime | None = None


class Refunds(Protocol):
    async def request(self, refund: RefundRequest, *, hold: bool, now: datetime) -> bool:
        """Record the intent before any gateway call; False if one exists for the payment."""
        ...


class RefundQueue(Protocol):
    async def claim_due(
        self, *, limit: int, now: datetime, lease: timedelta
    ) -> list[RefundRequest]: ...

    async def mark_succeeded(
        self, refund: RefundRequest, *, gateway_refund_id: str | None, now: datetime
    ) -> None: ...

    async def record_failure(self, failed: FailedTry[RefundRequest], *, now: datetime) -> None:
        """Retry it later, or mark it dead with its reason (listed by `payrelay dlq`)."""
        ...

    async def hold(self, refund: RefundRequest, *, error: str, now: datetime) -> None:
        """The gateway refused it for good: keep it for a person, do not try again."""
        ...


class Checkouts(Protocol):
    async def get(self, order_id: str) -> Checkout | None: ...

    async def add(self, checkout: Checkout, *, now: datetime) -> Checkout:
        """Insert, or return the checkout a concurrent caller stored first."""
        ...


class Notifications(Protocol):
    async def mark_processed(self, ids: Sequence[int], *, now: datetime) -> None: ...


class ReconciliationStore(Protocol):
    """What the reconciler asks of the payments database."""

    async def unanswered_approvals(
        self, *, updated_before: datetime, limit: int
    ) -> list[str]: ...

    async def resend_approvals(
        self, payment_ids: Sequence[str], *, now: datetime
    ) -> list[str]:
        """Publish these approvals again, restarting their SLA; returns the ids re-sent.

        Never waits for a row lock: a payment another transaction holds is skipped (left
        for a later run), so the reconciler cannot deadlock with the consumers."""
        ...

    async def checkouts_to_verify(
        self, *, created_before: datetime, created_after: datetime, limit: int
    ) -> list[str]: ...

    async def mark_verified(self, order_id: str, *, now: datetime) -> None: ...

    async def known_updates(self, payment_ids: Sequence[str]) -> dict[str, datetime]:
        """The gateway's date_last_updated payrelay holds for each payment it knows."""
        ...

    async def unsettled(self, *, updated_before: datetime, limit: int) -> list[str]: ...

    async def sweep_watermark(self, provider: str) -> datetime | None:
        """Where the next sweep starts (None before the first): every payment the gateway
        last updated before it has been read."""
        ...

    async def advance_sweep_watermark(
        self, provider: str, watermark: datetime, *, now: datetime
    ) -> None:
        """Move the watermark forward to `watermark`; an earlier one leaves it as it is."""
        ...

    async def save_report(
        self, report: dict[str, Any], *, started_at: datetime, finished_at: datetime
    ) -> None: ...


class PaymentsTx(Protocol):
    @property
    def notifications(self) -> Notifications: ...
    @property
    def payments(self) -> Payments: ...
    @property
    def checkouts(self) -> Checkouts: ...
    @property
    def refunds(self) -> Refunds: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def inbox(self) -> Inbox: ...
    @property
    def timeline(self) -> Timeline: ...
    @property
    def dead_letters(self) -> DeadLetters: ...


class PaymentsUnitOfWork(Protocol):
    def begin(self) -> AbstractAsyncContextManager[PaymentsTx, bool | None]: ...


# --- storage: orders database ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku: str
    quantity: int
    unit_price: Money


class Orders(Protocol):
    async def get(self, order_id: str, *, for_update: bool = False) -> Order | None: ...

    async def add(
        self, order: Order, lines: Sequence[OrderLine], *, description: str, now: datetime
    ) -> None: ...

    async def save(self, order: Order, *, expected_version: int, now: datetime) -> None:
        """Write `order` if the stored version is still `expected_version`, the one the
        caller read: one event may move an order several versions (a refund seen first
        pays, then refunds). Otherwise raise ConcurrentUpdate, having written nothing."""
        ...

    async def unpaid_since(self, cutoff: datetime, *, limit: int) -> list[str]:
        """Ids of orders still waiting for payment that were created before `cutoff`."""
        ...

    async def get_payment(self, payment_id: str) -> PaymentRecord | None: ...

    async def save_payment(self, record: PaymentRecord) -> None: ...


class OrdersTx(Protocol):
    @property
    def orders(self) -> Orders: ...
    @property
    def outbox(self) -> Outbox: ...
    @property
    def inbox(self) -> Inbox: ...
    @property
    def timeline(self) -> Timeline: ...
    @property
    def dead_letters(self) -> DeadLetters: ...


class OrdersUnitOfWork(Protocol):
    def begin(self) -> AbstractAsyncContextManager[OrdersTx, bool | None]: ...


class PaymentsClient(Protocol):
    """How the orders service asks the payments service for a checkout link."""

    async def checkout(
        self, *, order_id: str, amount: Money, description: str
    ) -> Checkout: ...


# --- read models -------------------------------------------------------------------------
# What reports, status pages and readiness checks look at; never what a service decides on.


@dataclass(frozen=True, slots=True)
class PaymentRow:
    payment_id: str
    order_id: str | None
    status: str
    amount_minor: int
    currency: str
    date_approved: datetime | None
    version: int
    order_outcome: str | None
    outcome_reason: str | None


@dataclass(frozen=True, slots=True)
class OrderRow:
    order_id: str
    status: str
    total_minor: int
    currency: str
    paid_by: str | None
    paid_at: datetime | None


@dataclass(frozen=True, slots=True)
class PaymentsBacklog:
    notifications_waiting: int
    outbox_pending: int
    outbox_sent: int
    notifications: int


class PaymentsReadModel(Protocol):
    """The payments database, read-only, as the demo report and health checks see it."""

    async def check(self) -> None:
        """Return if the database answers at this code's schema; raise StorageUnavailable
        (SchemaBehind for an old schema) otherwise."""

    async def payment_rows(self) -> list[PaymentRow]: ...

    async def backlog(self) -> PaymentsBacklog: ...

    async def refund_counts(self) -> dict[RefundStatus, int]:
        """How many refunds are in each status (a status no refund has is absent)."""

    async def retries(self) -> int:
        """Failed attempts of stored work (outbox, notifications, refunds) tried again."""

    async def dead_letter_count(self) -> int:
        """Dead messages, dead notifications and dead refunds."""

    async def reconciler_fixes(self) -> int: ...

    async def checkout_reconciled(self, order_id: str) -> bool:
        """Whether the reconciler has searched the gateway for this order's checkout."""


class OrdersReadModel(Protocol):
    """The orders database, read-only, as the demo report and health checks see it."""

    async def check(self) -> None:
        """Return if the database answers at this code's schema; raise StorageUnavailable
        (SchemaBehind for an old schema) otherwise."""

    async def order_rows(self) -> list[OrderRow]: ...

    async def outbox_pending(self) -> int: ...

    async def retries(self) -> int: ...

    async def dead_letter_count(self) -> int: ...


class Resources(Protocol):
    """What bootstrap opened for a running system (engines, HTTP clients): `close` releases
    all of it, once the workers and the transport have stopped."""

    async def close(self) -> None: ...
