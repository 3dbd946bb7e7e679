"""Read models: what reports, status pages and readiness checks look at; never what a
service decides on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from payrelay.domain.work import RefundStatus


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
