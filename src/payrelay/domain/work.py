"""The states of stored work: one enum per queue, shared by code, CHECK constraints and docs.

Each queue row is claimed while it is in its waiting state and leaves it exactly once,
to a finished state or to `DEAD` (given up with a recorded reason, listed by `payrelay dlq`).
"""

from __future__ import annotations

from enum import StrEnum


class NotificationStatus(StrEnum):
    RECEIVED = "received"
    """Recorded, not yet applied: the processor fetches the payment it names."""
    PROCESSED = "processed"
    """The payment it named was fetched and its state committed."""
    IGNORED = "ignored"
    """A topic payrelay does not act on (e.g. merchant_order): kept, never fetched."""
    DEAD = "dead"
    """Given up on by the retry decision; the reason is in `last_error`."""


class OutboxStatus(StrEnum):
    PENDING = "pending"
    """Committed with its state change, not yet confirmed by the transport."""
    SENT = "sent"
    """Confirmed: the broker holds it (or the in-process consumer handled it)."""
    DEAD = "dead"
    """Given up on (rows from before consumer failures stayed on the consumer's side)."""


class RefundStatus(StrEnum):
    REQUESTED = "requested"
    """The intent is recorded; the refunder calls the gateway."""
    SUCCEEDED = "succeeded"
    """The gateway refunded it."""
    HELD = "held"
    """Kept for a person: by policy, or the gateway refused it for good."""
    DISMISSED = "dismissed"
    """A person closed a held refund without refunding it; the reason is in `last_error`."""
    DEAD = "dead"
    """Given up on by the retry decision; the reason is in `last_error`."""


def check_in(column: str, status: type[StrEnum]) -> str:
    """The SQL of a CHECK constraint that keeps `column` to the enum's values."""
    values = ", ".join(f"'{member.value}'" for member in status)
    return f"{column} IN ({values})"
