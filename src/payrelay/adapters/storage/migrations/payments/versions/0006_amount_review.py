"""amount review: the gateway's text of an amount no minor units hold exactly

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 10:00:00.000000

Written beside 0005 (another branch): at merge, chain it after whichever lands first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("amount_written", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("amount_problem", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("amount_problem")
        batch_op.drop_column("amount_written")
