"""wake triggers: orders outbox rows notify the orders relay on commit (PostgreSQL)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 12:15:00

As payments 0010 does for the payments database (`ports/wakeups.py`). SQLite gets nothing.
"""

from __future__ import annotations

from payrelay.adapters.storage.migrations.wake_triggers import (
    create_wake_triggers,
    drop_wake_triggers,
)

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = {"outbox": ("payrelay_orders_outbox", "pending")}


def upgrade() -> None:
    create_wake_triggers(TABLES)


def downgrade() -> None:
    drop_wake_triggers(list(TABLES))
