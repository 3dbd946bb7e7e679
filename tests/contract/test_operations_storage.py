"""The `Operations` port and the heartbeats over SQLite and PostgreSQL (issue 12).

The trace joins what the payments side keys by payment id to its order (the payments row,
or a notification's order hint when the gateway never answered), status counts each
stage, and a held refund leaves `held` exactly once, by release or by dismissal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.operations import SqlHeartbeats, SqlOperations
from payrelay.ports import NotificationRecord, RefundRequest, TimelineEntry, UnknownRefund
from tests.contract.builders import AT, TEN, envelope, notification, payment
from tests.contract.conftest import SCHEMAS, Storage, _copy_files, _sqlite_url, sql_storage
from tests.simulated_gateway import ManualClock

BEAT = timedelta(seconds=5)


@dataclasses.dataclass
class Ops:
    storage: Storage
    operations: SqlOperations
    heartbeats: SqlHeartbeats
    clock: ManualClock


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def ops(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ops]:
    clock = ManualClock(AT)
    if request.param == "sqlite":
        _copy_files(request.getfixturevalue("sqlite_template"), tmp_path)
        urls = [_sqlite_url(tmp_path, s) for s in SCHEMAS]
    else:
        urls = request.getfixturevalue("postgres_pair")
    async with sql_storage(request.param, urls, clock, empty=request.param == "postgres"
                           ) as storage:
        payments_db, orders_db = Database(urls[0]), Database(urls[1])
        try:
            operations = SqlOperations(payments_db=payments_db, orders_db=orders_db,
                                       clock=clock, heartbeat_interval=BEAT)
            yield Ops(storage, operations, SqlHeartbeats(payments_db, orders_db), clock)
        finally:
            await payments_db.dispose()
            await orders_db.dispose()


def hinted(payment_id: str, order_id: str | None) -> NotificationRecord:
    return dataclasses.replace(notification(payment_id), order_hint=order_id)


async def test_a_payment_the_gateway_never_returned_joins_its_order_by_the_hint(ops: Ops):
    s = ops.storage
    async with s.orders.begin() as tx:
        await tx.timeline.record("order.created", at=AT - timedelta(seconds=1),
                                 order_id="order-1", payment_id=None)
    delivery = hinted("1000000001", "order-1")
    assert await s.notification_log.record(delivery)
    assert not await s.notification_log.record(delivery)  # the gateway's retry: a duplicate
    async with s.payments.begin() as tx:
        await tx.timeline.record_many([TimelineEntry(
            "gateway.fetch_failed", AT + timedelta(seconds=1), None, "1000000001",
            "GatewayUnavailable: HTTP 503; try 1; next try soon")])

    by_order = await ops.operations.trace("order-1")
    by_payment = await ops.operations.trace("1000000001")

    kinds = [step.kind for step in by_order.steps]
    assert kinds[0] == "order.created" and "gateway.fetch_failed" in kinds
    assert "notification.received" in kinds and "notification.duplicate" in kinds
    assert by_order.payment_ids == ("1000000001",) and by_order.order_ids == ("order-1",)
    assert by_payment.order_ids == ("order-1",)
    assert [s.kind for s in by_payment.steps] == kinds
    assert not (await ops.operations.trace("no-such-id")).found


async def test_a_hint_never_outweighs_the_gateways_word(ops: Ops):
    """A notification hinting at order-2 about a payment the gateway placed in order-1."""
    s = ops.storage
    async with s.payments.begin() as tx:
        await tx.payments.save(payment("1000000002", order_id="order-1"),
                               expected_version=None, now=AT)
        await tx.timeline.record("payment.approved", at=AT, order_id="order-1",
                                 payment_id="1000000002")
    await s.notification_log.record(hinted("1000000002", "order-2"))
    assert "1000000002" not in (await ops.operations.trace("order-2")).payment_ids
    assert (await ops.operations.trace("1000000002")).order_ids == ("order-1",)


async def test_status_counts_each_stage_and_ages_its_oldest(ops: Ops):
    s = ops.storage
    await s.notification_log.record(notification("1000000003"))
    await s.notification_log.record(notification("1000000004"))
    async with s.payments.begin() as tx:
        await tx.outbox.add(envelope("1000000003"), exchange="payrelay.payments")
        await tx.refunds.request(_refund("1000000005"), hold=True, now=AT)
        await tx.refunds.request(_refund("1000000006"), hold=False, now=AT)
    ops.clock.advance(seconds=30)

    status = await ops.operations.status()

    assert status.notifications_waiting.count == 2
    assert status.notifications_waiting.oldest_age_seconds == pytest.approx(30)
    assert status.payments_outbox.count == 1 and status.orders_outbox.count == 0
    assert (status.refunds_held, status.refunds_pending) == (1, 1)
    assert status.dead_letters == 0 and status.workers == ()


async def test_a_worker_that_stops_beating_shows_as_down(ops: Ops):
    await ops.heartbeats.beat("host:1", ["processor"], at=AT, sides={"payments"})
    await ops.heartbeats.beat("host:2", ["order-consumer"], at=AT, sides={"orders"})
    ops.clock.advance(seconds=14)
    await ops.heartbeats.beat("host:2", ["order-consumer"], at=ops.clock(), sides={"orders"})
    ops.clock.advance(seconds=2)  # host:1 last beat 16 s ago: more than three 5 s intervals

    workers = {w.name: w for w in (await ops.operations.status()).workers}

    assert workers["host:1"].roles == ("processor",) and not workers["host:1"].up
    assert workers["host:2"].up and workers["host:2"].last_beat_at == AT + timedelta(seconds=14)


async def test_a_held_refund_is_released_once_and_another_dismissed_with_its_reason(ops: Ops):
    s = ops.storage
    async with s.payments.begin() as tx:
        await tx.refunds.request(_refund("1000000007"), hold=True, now=AT)
        await tx.refunds.request(_refund("1000000008"), hold=True, now=AT)
    held = await ops.operations.held_refunds()
    assert [(h.refund_id, h.order_id, h.amount) for h in held] == [
        ("1000000007", "order-1", TEN), ("1000000008", "order-1", TEN)]

    await ops.operations.release_refund("1000000007")
    with pytest.raises(UnknownRefund):
        await ops.operations.release_refund("1000000007")  # once: it is no longer held
    await ops.operations.dismiss_refund("1000000008", "customer settled it in the shop")
    with pytest.raises(UnknownRefund):
        await ops.operations.dismiss_refund("1000000009", "no such refund")

    assert await ops.operations.held_refunds() == []
    claimed = await s.refunds.claim_due(limit=10, now=ops.clock(), lease=timedelta(seconds=3))
    assert [r.payment_id for r in claimed] == ["1000000007"]  # the refunder gets it, not 8
    steps = {(st.kind, st.payment_id) for st in (await ops.operations.trace("order-1")).steps}
    assert {("refund.released", "1000000007"), ("refund.dismissed", "1000000008")} <= steps
    status = await ops.operations.status()
    assert (status.refunds_held, status.refunds_pending) == (0, 1)  # 7, with the refunder


def _refund(payment_id: str) -> RefundRequest:
    return RefundRequest(payment_id=payment_id, provider="mercadopago", order_id="order-1",
                         amount=TEN, reason="unknown_order")



async def test_without_an_orders_database_the_payments_side_is_still_traced(ops: Ops):
    """A deployment whose shop runs its own order service has no orders database."""
    payments_only = SqlOperations(payments_db=ops.operations._payments, orders_db=None,
                                  clock=ops.clock, heartbeat_interval=BEAT)
    await ops.storage.notification_log.record(hinted("1000000010", "order-9"))
    await SqlHeartbeats(ops.operations._payments, None).beat(
        "host:3", ["processor", "order-consumer"], at=AT, sides={"payments", "orders"})

    traced = await payments_only.trace("1000000010")
    status = await payments_only.status()

    assert traced.order_ids == ("order-9",) and traced.steps[0].kind == "notification.received"
    assert not status.orders_side and status.orders_outbox.count == 0
    assert [w.name for w in status.workers] == ["host:3"]
