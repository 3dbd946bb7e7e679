"""The JSON shape of trace, status and held refunds: one for the commands and the endpoints.

Standard library only, so `payrelay status --json` and `GET /admin/status` print the same
document and a command imports nothing heavy to build it.
"""

from __future__ import annotations

from typing import Any

from payrelay.ports.operations import Backlog, HeldRefund, PipelineStatus, Trace

__all__ = ["backlog_json", "held_refund_json", "status_json", "trace_json"]


def trace_json(trace: Trace) -> dict[str, Any]:
    return {
        "query": trace.query,
        "found": trace.found,
        "order_ids": list(trace.order_ids),
        "payment_ids": list(trace.payment_ids),
        "steps": [
            {"at": s.at.isoformat(), "side": s.side, "kind": s.kind, "order_id": s.order_id,
             "payment_id": s.payment_id, "detail": s.detail}
            for s in trace.steps
        ],
    }


def backlog_json(backlog: Backlog) -> dict[str, Any]:
    return {"count": backlog.count, "oldest_age_seconds": backlog.oldest_age_seconds}


def status_json(status: PipelineStatus) -> dict[str, Any]:
    last_run = status.reconciler_last_run_at
    return {
        "notifications_waiting": backlog_json(status.notifications_waiting),
        "notifications_retrying": status.notifications_retrying,
        "notifications_dead": status.notifications_dead,
        "last_notification_error": status.last_notification_error,
        "payments_outbox": backlog_json(status.payments_outbox),
        "orders_outbox": backlog_json(status.orders_outbox),
        "orders_side": status.orders_side,
        "retrying": status.retrying,
        "dead_letters": status.dead_letters,
        "unapplied_approvals": backlog_json(status.unapplied_approvals),
        "reconciler_last_run_at": last_run.isoformat() if last_run else None,
        "reconciler_findings": status.reconciler_findings,
        "refunds_pending": status.refunds_pending,
        "refunds_held": status.refunds_held,
        "workers": [
            {"name": w.name, "roles": list(w.roles), "last_beat_at": w.last_beat_at.isoformat(),
             "up": w.up}
            for w in status.workers
        ],
    }


def held_refund_json(refund: HeldRefund) -> dict[str, Any]:
    return {
        "refund_id": refund.refund_id,
        "order_id": refund.order_id,
        "payment_id": refund.payment_id,
        "amount": str(refund.amount.amount),
        "currency": refund.amount.currency,
        "reason": refund.reason,
        "held_at": refund.held_at.isoformat(),
    }
