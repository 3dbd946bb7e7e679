"""What the admin page's tests share: a fixed `Operations` (the real one is another module's),
a real dead letter in a real SQLite database, and the internal app with the page mounted."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import APIRouter, FastAPI

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.messages import SqlDeadLetters
from payrelay.entrypoints.admin_api import admin_router
from payrelay.entrypoints.admin_page import admin_page_router
from payrelay.entrypoints.embedded import EmbeddedStack
from payrelay.entrypoints.ops_api import ops_router
from payrelay.entrypoints.payments_api import create_internal_app
from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION
from payrelay.ports import Delivery
from payrelay.ports.operations import (
    Backlog,
    HeldRefund,
    PipelineStatus,
    Trace,
    TraceStep,
    UnknownRefund,
    WorkerBeat,
)
from tests.support import adapters_of

TOKEN = "admin-page-token-for-tests"
SERVICE_TOKEN = "service-token-for-admin-tests"
AT = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)

STATUS = PipelineStatus(
    notifications_waiting=Backlog(count=7, oldest_age_seconds=42.0),
    notifications_dead=1,
    payments_outbox=Backlog(count=3, oldest_age_seconds=5.0),
    orders_outbox=Backlog(count=0, oldest_age_seconds=None),
    retrying=2,
    dead_letters=1,
    unapplied_approvals=Backlog(count=4, oldest_age_seconds=600.0),
    reconciler_last_run_at=AT,
    reconciler_findings=5,
    refunds_pending=1,
    refunds_held=6,
    workers=(WorkerBeat(name="worker-a", roles=("processor", "payments-relay"),
                        last_beat_at=AT, up=True),),
)


@dataclass
class FixedOperations:
    """An `Operations` that answers fixed values and remembers what it was asked."""

    status_value: PipelineStatus = STATUS
    traced: list[str] = field(default_factory=list)

    async def trace(self, order_or_payment_id: str) -> Trace:
        self.traced.append(order_or_payment_id)
        if order_or_payment_id != "shop-77":
            return Trace(query=order_or_payment_id, order_ids=(), payment_ids=(), steps=())
        steps = (
            TraceStep(at=AT, side="payments", kind="notification.received", order_id="shop-77",
                      payment_id="pay-9001", detail="webhook payment pay-9001"),
            TraceStep(at=AT, side="orders", kind="order.paid", order_id="shop-77",
                      payment_id="pay-9001", detail="applied approved pay-9001"),
        )
        return Trace(query="shop-77", order_ids=("shop-77",), payment_ids=("pay-9001",),
                     steps=steps)

    async def status(self) -> PipelineStatus:
        return self.status_value

    async def held_refunds(self) -> list[HeldRefund]:
        return []

    async def release_refund(self, refund_id: str) -> None:
        raise UnknownRefund(refund_id)  # it holds none: a 404, as for a refund gone

    async def dismiss_refund(self, refund_id: str, reason: str) -> None:
        raise UnknownRefund(refund_id)


async def add_dead_letter(running: EmbeddedStack, *, routing_key: str = "payment.approved") -> str:
    """A dead letter in the orders database, as the order consumer stores one; its id."""
    delivery = Delivery(message_id=str(uuid.uuid4()), routing_key=routing_key,
                        body=b'{"poison": true}', headers={"x-payrelay-attempts": "3"})
    async with adapters_of(running).orders_db.transaction() as conn:
        await SqlDeadLetters(conn, t.orders_dead_letters).add(
            delivery, subscription=ORDER_SIDE_SUBSCRIPTION,
            reason="consumer retries exhausted", error="InjectedFault: for the admin page",
            at=AT,
        )
    (letter,) = [d for d in await running.system.dead_letters.recent()
                 if d.message_id == delivery.message_id]
    return letter.id


def internal_app_with_page(
    running: EmbeddedStack, operations: FixedOperations, token: str
) -> FastAPI:
    """The payments internal app as listeners.py builds it, the admin page mounted."""
    system = running.system
    admin = APIRouter()
    admin.include_router(admin_router(system.dead_letters, lambda: token))
    admin.include_router(ops_router(operations, lambda: token))
    admin.include_router(admin_page_router(operations, system.dead_letters, lambda: token))
    return create_internal_app(system.payments, system.transport,
                               service_token=lambda: SERVICE_TOKEN, admin=admin)
