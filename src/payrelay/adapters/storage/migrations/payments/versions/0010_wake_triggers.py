"""wake triggers: due work notifies its stage's listeners on commit (PostgreSQL)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 12:15:00

New notifications wake the processor, payments outbox rows the payments relay, requested
refunds the refunder, across processes (`ports/wakeups.py`). SQLite gets nothing.
"""

from __future__ import annotations

from payrelay.adapters.storage.migrations.wake_triggers import (
    create_wake_triggers,
    drop_wake_triggers,
)

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = {
    "notifications": ("payrelay_notifications", "received"),
    "outbox": ("payrelay_payments_outbox", "pending"),
    "refunds": ("payrelay_refunds", "requested"),
}


def upgrade() -> None:
    create_wake_triggers(TABLES)


def downgrade() -> None:
    drop_wake_triggers(list(TABLES))
