"""failures: tries that count towards giving up, so outages never use them up

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("notifications", "refunds"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("failures", sa.Integer(), nullable=False, server_default="0")
            )


def downgrade() -> None:
    for table in ("notifications", "refunds"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("failures")
