"""notification widths: request_id up to 200, and the same limits enforced on SQLite

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 09:00:00

PostgreSQL refused a genuine 150-character x-request-id (varchar(100)) while SQLite stored
it; SQLite stored an over-long action that PostgreSQL refused. Both now hold the widths in
`tables.NOTIFICATION_WIDTHS`, as varchar lengths and as CHECK constraints (the only kind
SQLite enforces). Rows SQLite accepted past those widths are cut to fit first, keeping each
dedupe key unique by its row id.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

WIDTHS = {
    "dedupe_key": 200, "provider": 32, "topic": 64, "action": 64, "resource_id": 64,
    "request_id": 200,
}


def upgrade() -> None:
    op.execute(
        "UPDATE notifications SET dedupe_key = substr(dedupe_key, 1, 180) || ':' || id"
        " WHERE length(dedupe_key) > 200"
    )
    for name, width in WIDTHS.items():
        if name != "dedupe_key":
            column = sa.column(name, sa.String)
            op.execute(
                sa.table("notifications", column)
                .update()
                .where(sa.func.length(column) > width)
                .values({name: sa.func.substr(column, 1, width)})
            )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.alter_column(
            "request_id", existing_type=sa.String(length=100), type_=sa.String(length=200)
        )
        for name, width in WIDTHS.items():
            batch_op.create_check_constraint(
                f"ck_notifications_{name}_width", sa.text(f"length({name}) <= {width}")
            )


def downgrade() -> None:
    op.execute(
        "UPDATE notifications SET request_id = substr(request_id, 1, 100)"
        " WHERE length(request_id) > 100"
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        for column in WIDTHS:
            batch_op.drop_constraint(f"ck_notifications_{column}_width", type_="check")
        batch_op.alter_column(
            "request_id", existing_type=sa.String(length=200), type_=sa.String(length=100)
        )
