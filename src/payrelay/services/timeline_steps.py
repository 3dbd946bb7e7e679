"""The timeline rows of the batch paths, built in one place so every writer words them alike.

`payrelay trace` reads them back (adapters/storage/operations_trace.py). Each is written in
the same transaction as the work it describes, with `record_many` (one statement a batch).
A row built from a notification's order hint keeps the hint in its detail, never in
`order_id`: the hint is unsigned, and the trace joins it through the notification row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from payrelay.domain.errors import GatewayError
from payrelay.domain.payment import PaymentSnapshot
from payrelay.domain.retry import RetryDecision
from payrelay.ports import ClaimedNotification, OutboundMessage, RefundRequest, TimelineEntry


def fetched(snapshot: PaymentSnapshot, *, at: datetime) -> TimelineEntry:
    """The gateway answered: what it said the payment is."""
    detail = f"status {snapshot.status.value}"
    if snapshot.status_detail:
        detail += f" ({snapshot.status_detail})"
    return TimelineEntry("gateway.fetched", at, snapshot.order_id, snapshot.payment_id,
                         f"{detail}; {snapshot.amount}")


def fetch_failed(
    notification: ClaimedNotification, exc: Exception, *, error: str,
    decision: RetryDecision, at: datetime,
) -> TimelineEntry:
    """A failed fetch (or a lost race) and what the retry decision made of it."""
    attempt = notification.attempts + 1
    if decision.retry_at is not None:
        step = "gateway.fetch_failed" if isinstance(exc, GatewayError) else "payment.save_lost"
        detail = f"{error}; try {attempt}; next try {decision.retry_at.isoformat()}"
    else:
        step = "gateway.gave_up"
        detail = f"{error}; gave up after {attempt} tries: {decision.gave_up}"
    if notification.order_hint:
        detail += f"; order hint {notification.order_hint}"
    return TimelineEntry(step, at, None, notification.resource_id, detail)


def refund_failed(
    refund: RefundRequest, *, error: str, decision: RetryDecision, at: datetime
) -> TimelineEntry:
    """A refund the gateway did not answer, and when it is tried again (or given up)."""
    if decision.retry_at is not None:
        step, then = "refund.failed", f"next try {decision.retry_at.isoformat()}"
    else:
        step, then = "refund.gave_up", f"gave up: {decision.gave_up}; payrelay dlq list"
    return TimelineEntry(step, at, refund.order_id, refund.payment_id,
                         f"{refund.amount}; {error[:300]}; {then}")


def resent(payment_id: str, *, at: datetime) -> TimelineEntry:
    """The reconciler sent an approval the order side never answered once more."""
    return TimelineEntry("reconciler.resent_approval", at, None, payment_id,
                         "approved, unanswered past the outcome SLA: published again")


def published(messages: Sequence[OutboundMessage], *, at: datetime) -> list[TimelineEntry]:
    """Messages the transport confirmed, as the relay marks them sent."""
    return [
        TimelineEntry("outbox.published", at, m.order_id, m.payment_id,
                      f"{m.routing_key} to {m.exchange}; message {m.message_id}")
        for m in messages
    ]
