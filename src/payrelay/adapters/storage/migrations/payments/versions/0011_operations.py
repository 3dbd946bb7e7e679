"""operations: the notification's order hint, worker heartbeats, dismissed refunds

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 17:10:00

Issue 12 (`payrelay trace`, `payrelay status`, held refunds). `notifications.order_hint`
is the order id the checkout's notification_url carried: unsigned, read only by the trace.
`worker_heartbeats` holds each worker process's last beat. A held refund a person closes
without refunding is `dismissed`, so the refunds status check is recreated from the enum.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import payrelay.adapters.storage.types
from payrelay.domain.work import RefundStatus, check_in

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("order_hint", sa.String(length=64), nullable=True))
        batch_op.create_check_constraint(
            "ck_notifications_order_hint_width", sa.text("length(order_hint) <= 64")
        )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_constraint("ck_refunds_status", type_="check")
        batch_op.create_check_constraint(
            "ck_refunds_status", sa.text(check_in("status", RefundStatus))
        )
    create_heartbeats()
    op.create_index("ix_timeline_payment", "timeline", ["payment_id"])
    op.create_index("ix_notifications_resource", "notifications", ["resource_id"])
    op.create_index("ix_notifications_order_hint", "notifications", ["order_hint"])


def create_heartbeats() -> None:
    """The table both databases share the shape of (orders 0007 creates it there)."""
    op.create_table(
        "worker_heartbeats",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column(
            "beat_at", payrelay.adapters.storage.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    for index, table in (("ix_timeline_payment", "timeline"),
                         ("ix_notifications_resource", "notifications"),
                         ("ix_notifications_order_hint", "notifications")):
        op.drop_index(index, table_name=table)
    op.drop_table("worker_heartbeats")
    op.execute("UPDATE refunds SET status = 'held' WHERE status = 'dismissed'")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_constraint("ck_refunds_status", type_="check")
        allowed = [s for s in RefundStatus if s is not RefundStatus.DISMISSED]
        values = ", ".join(f"'{s.value}'" for s in allowed)
        batch_op.create_check_constraint("ck_refunds_status", sa.text(f"status IN ({values})"))
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_constraint("ck_notifications_order_hint_width", type_="check")
        batch_op.drop_column("order_hint")
