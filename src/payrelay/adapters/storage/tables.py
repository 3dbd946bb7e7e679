"""The two schemas: the payments database and the orders database never share a transaction.

Money is stored as integer minor units beside its currency. A payment whose amount the
gateway wrote finer than its currency also keeps that text (`amount_written`) and the
problem (`amount_problem`); its `amount_minor` is then the value rounded toward zero, an
approximation that the non-null `amount_problem` marks as such. Outbox, inbox and timeline
tables have the same shape on both sides, so one relay and one timeline reader serve both.
The `status` of stored work (notifications, outboxes, refunds) is one of its enum's values
in `domain/work.py`, held there by a CHECK constraint built from that same enum.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from payrelay.adapters.storage.types import UTCDateTime
from payrelay.domain.work import NotificationStatus, OutboxStatus, RefundStatus, check_in

payments_metadata = MetaData()
orders_metadata = MetaData()


def _status_check(table: str, status: type[StrEnum]) -> CheckConstraint:
    """`status` holds one of the enum's values and nothing else, as the code knows them."""
    return CheckConstraint(check_in("status", status), name=f"ck_{table}_status")


def _outbox(metadata: MetaData) -> Table:
    table = Table(
        "outbox",
        metadata,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("message_id", String(36), nullable=False, unique=True),
        Column("exchange", String(100), nullable=False),
        Column("routing_key", String(100), nullable=False),
        Column("correlation_id", String(100), nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("order_id", String(64)),
        Column("payment_id", String(64)),
        Column("status", String(16), nullable=False),  # an OutboxStatus
        Column("attempts", Integer, nullable=False, default=0),  # failed tries, of any kind
        Column("created_at", UTCDateTime, nullable=False),
        Column("next_attempt_at", UTCDateTime, nullable=False),  # also the claim lease
        Column("sent_at", UTCDateTime),
        Column("last_error", Text),
        _status_check("outbox", OutboxStatus),
    )
    Index("ix_outbox_due", table.c.status, table.c.next_attempt_at)
    return table


def _inbox(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("message_id", String(36), primary_key=True),
        Column("type", String(64), nullable=False),
        Column("payment_id", String(64)),
        Column("received_at", UTCDateTime, nullable=False),
        Column("reply_message_id", String(36)),  # the outcome sent back, repeated on redelivery
    )


def _timeline(metadata: MetaData) -> Table:
    table = Table(
        "timeline",
        metadata,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("at", UTCDateTime, nullable=False),
        Column("order_id", String(64)),
        Column("payment_id", String(64)),
        Column("step", String(64), nullable=False),
        Column("detail", Text),
    )
    Index("ix_timeline_order", table.c.order_id, table.c.seq)
    Index("ix_timeline_payment", table.c.payment_id)  # `payrelay trace <payment id>`
    return table


def _worker_heartbeats(metadata: MetaData) -> Table:
    """Each worker process's last beat, in every database it uses (`payrelay status`)."""
    return Table(
        "worker_heartbeats",
        metadata,
        Column("name", String(200), primary_key=True),  # host:pid
        Column("roles", Text, nullable=False),  # comma-separated Role values
        Column("beat_at", UTCDateTime, nullable=False),
    )


def _dead_letters(metadata: MetaData) -> Table:
    return Table(
        "dead_letters",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("message_id", String(64)),
        Column("exchange", String(100)),  # where a replay publishes it again
        Column("routing_key", String(100)),
        Column("queue", String(200)),  # the consumer queue it died in, when known
        Column("body", LargeBinary, nullable=False),
        Column("reason", Text, nullable=False),
        Column("error", Text),  # the last exception's text
        Column("attempts", Integer, nullable=False),
        Column("dead_at", UTCDateTime, nullable=False),
    )


# --- payments database -------------------------------------------------------------------

# The widths of what a webhook stores. PostgreSQL's varchar enforces them; SQLite ignores a
# varchar's length, so the same limits are CHECK constraints too, and a value one database
# refuses the other refuses as well. Ingest validates against the same numbers first.
NOTIFICATION_WIDTHS = {
    "dedupe_key": 200, "provider": 32, "topic": 64, "action": 64, "resource_id": 64,
    "request_id": 200,  # MercadoPago sends a 36-character UUID; the rest is margin
    "order_hint": 64,
}


def _width_checks(table: str, widths: dict[str, int]) -> list[CheckConstraint]:
    return [
        CheckConstraint(f"length({column}) <= {width}", name=f"ck_{table}_{column}_width")
        for column, width in widths.items()
    ]


notifications = Table(
    "notifications",
    payments_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedupe_key", String(200), nullable=False, unique=True),
    Column("provider", String(32), nullable=False),
    Column("topic", String(64), nullable=False),
    Column("action", String(64)),
    Column("resource_id", String(64)),
    Column("request_id", String(200)),
    Column("status", String(16), nullable=False),  # a NotificationStatus
    Column("attempts", Integer, nullable=False, default=0),  # tries of any kind: the backoff
    # Tries that counted towards giving up (decide_retry); outages do not count.
    Column("failures", Integer, nullable=False, default=0, server_default="0"),
    Column("received_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),  # also the claim lease
    Column("processed_at", UTCDateTime),
    Column("last_error", Text),
    # The order id the checkout's notification_url carried (`?order_id=`): unsigned, so
    # untrusted, read only by `payrelay trace` to join a payment it cannot fetch to an order.
    Column("order_hint", String(64)),
    *_width_checks("notifications", NOTIFICATION_WIDTHS),
    _status_check("notifications", NotificationStatus),
)
Index("ix_notifications_due", notifications.c.status, notifications.c.next_attempt_at)
Index("ix_notifications_resource", notifications.c.resource_id)  # the trace's joins
Index("ix_notifications_order_hint", notifications.c.order_hint)

checkouts = Table(
    "checkouts",
    payments_metadata,
    Column("order_id", String(64), primary_key=True),
    Column("provider", String(32), nullable=False),
    Column("preference_id", String(100), nullable=False),
    Column("init_point", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("reconciled_at", UTCDateTime),  # when the reconciler last asked the gateway
)

payments = Table(
    "payments",
    payments_metadata,
    Column("payment_id", String(64), primary_key=True),
    Column("provider", String(32), nullable=False),
    Column("order_id", String(64), index=True),
    Column("status", String(32), nullable=False),
    Column("status_detail", String(100)),
    Column("amount_minor", BigInteger, nullable=False),  # rounded if amount_problem is set
    Column("refunded_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_written", String(64)),  # the gateway's text, when no minor units are exact
    Column("amount_problem", String(32)),  # why not: amount_precision
    Column("date_created", UTCDateTime, nullable=False),
    Column("date_approved", UTCDateTime),
    Column("date_last_updated", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("order_outcome", String(64)),  # order.payment_applied | order.payment_rejected
    Column("outcome_reason", String(64)),
    Column("outcome_at", UTCDateTime),
    Column("outcome_order_version", Integer),  # an older decision never overwrites a newer
)

refunds = Table(
    "refunds",
    payments_metadata,
    Column("payment_id", String(64), primary_key=True),  # at most one refund per payment
    Column("provider", String(32), nullable=False),
    Column("order_id", String(64), nullable=False, index=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # a RefundStatus
    Column("attempts", Integer, nullable=False, default=0),
    Column("failures", Integer, nullable=False, default=0, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=False),  # also the claim lease
    Column("gateway_refund_id", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("last_error", Text),
    _status_check("refunds", RefundStatus),
)
Index("ix_refunds_due", refunds.c.status, refunds.c.next_attempt_at)

reconciliation_runs = Table(
    "reconciliation_runs",
    payments_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("report", Text, nullable=False),  # JSON: what was found and what was done
)

sweep_watermarks = Table(
    "sweep_watermarks",
    payments_metadata,
    Column("provider", String(32), primary_key=True),
    # Every payment the gateway last updated before this instant was read by a sweep.
    Column("watermark", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

payments_outbox = _outbox(payments_metadata)
payments_inbox = _inbox(payments_metadata)
payments_timeline = _timeline(payments_metadata)
payments_dead_letters = _dead_letters(payments_metadata)
payments_heartbeats = _worker_heartbeats(payments_metadata)

# --- orders database ---------------------------------------------------------------------

orders = Table(
    "orders",
    orders_metadata,
    Column("order_id", String(64), primary_key=True),
    Column("status", String(32), nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("description", Text, nullable=False),
    Column("paid_by", String(64)),
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("paid_at", UTCDateTime),
    Column("review_reason", String(64)),  # why it is in needs_review (amount_precision)
)

order_items = Table(
    "order_items",
    orders_metadata,
    Column("order_id", String(64), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("sku", String(100), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_minor", BigInteger, nullable=False),
)

order_payments = Table(
    "order_payments",
    orders_metadata,
    Column("payment_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("last_version", Integer, nullable=False),
    Column("last_status", String(32), nullable=False),
    Column("outcome", String(64)),
    Column("outcome_reason", String(64)),
    Column("approved_at", UTCDateTime),  # the gateway's approval time: the keeper rule
)

orders_outbox = _outbox(orders_metadata)
orders_inbox = _inbox(orders_metadata)
orders_timeline = _timeline(orders_metadata)
orders_dead_letters = _dead_letters(orders_metadata)
orders_heartbeats = _worker_heartbeats(orders_metadata)
