"""heartbeats: each worker process's last beat (issue 12), timeline by payment id

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 17:10:00

The same table as payments 0011 creates in the payments database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import payrelay.adapters.storage.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column(
            "beat_at", payrelay.adapters.storage.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_timeline_payment", "timeline", ["payment_id"])


def downgrade() -> None:
    op.drop_index("ix_timeline_payment", table_name="timeline")
    op.drop_table("worker_heartbeats")
