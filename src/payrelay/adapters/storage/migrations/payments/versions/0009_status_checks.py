"""status checks: each queue's status held to its enum; the outbox's refusals dropped

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 11:30:00

A status outside its enum (`domain/work.py`) is now refused by the database, on PostgreSQL
and SQLite alike. The constraints are built from the enums with `check_in`, as tables.py
builds them: a member added to an enum later needs a migration that recreates its
constraint (test_migrations compares the live constraints with tables.py).

The outbox keeps one count of failed tries, `attempts`: `refusals` (consumer failures
counted apart) is folded into it and dropped.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from payrelay.domain.work import NotificationStatus, OutboxStatus, RefundStatus, check_in

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

CHECKED = {"notifications": NotificationStatus, "refunds": RefundStatus, "outbox": OutboxStatus}


def upgrade() -> None:
    op.execute("UPDATE outbox SET attempts = attempts + refusals")
    for table, status in CHECKED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            if table == "outbox":
                batch_op.drop_column("refusals")
            batch_op.create_check_constraint(
                f"ck_{table}_status", sa.text(check_in("status", status))
            )


def downgrade() -> None:
    for table in CHECKED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"ck_{table}_status", type_="check")
            if table == "outbox":
                batch_op.add_column(
                    sa.Column("refusals", sa.Integer(), server_default="0", nullable=False)
                )
