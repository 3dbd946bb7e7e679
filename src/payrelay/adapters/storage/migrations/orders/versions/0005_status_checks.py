"""status checks: the outbox's status held to its enum; its refusals dropped

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 11:30:00

As payments 0009 does for the payments database: a status outside `OutboxStatus` is now
refused by the database (the constraint is built from the enum with `check_in`, as tables.py
builds it), and `refusals` is folded into `attempts`, the outbox's one count of failed tries.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from payrelay.domain.work import OutboxStatus, check_in

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE outbox SET attempts = attempts + refusals")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("refusals")
        batch_op.create_check_constraint(
            "ck_outbox_status", sa.text(check_in("status", OutboxStatus))
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_constraint("ck_outbox_status", type_="check")
        batch_op.add_column(
            sa.Column("refusals", sa.Integer(), server_default="0", nullable=False)
        )
