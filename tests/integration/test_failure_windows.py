"""Each failure window docs/architecture.md claims to close, forced open and checked."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.entrypoints.embedded import EmbeddedStack
from payrelay.faults import FaultPoint, Faults
from payrelay.simulator.faults import SimulatorFaults
from tests.support import Customer, StackFactory, adapters_of, eventually

pytestmark = pytest.mark.parametrize(
    "backend", ["sqlite", "postgres", "postgres+rabbitmq"], indirect=True
)

async def outbox_rows(db: Database, table=t.payments_outbox) -> list:
    async with db.read() as conn:
        return list((await conn.execute(select(table))).all())


async def outcome_of(stack: EmbeddedStack, payment_id: str) -> tuple[str | None, str | None]:
    async with adapters_of(stack).payments_db.read() as conn:
        row = (await conn.execute(
            select(t.payments.c.order_outcome, t.payments.c.outcome_reason)
            .where(t.payments.c.payment_id == payment_id)
        )).first()
    return (None, None) if row is None else (row[0], row[1])


async def wait_outcome(stack: EmbeddedStack, payment_id: str, expected: str) -> None:
    async def recorded() -> bool:
        return (await outcome_of(stack, payment_id))[0] == expected

    await eventually(recorded, what=f"outcome {expected} for {payment_id}")


async def paid_and_answered(customer: Customer) -> tuple[str, str]:
    """Pay an order, then wait until it is PAID and the payments side has the answer."""
    order_id, payment_id = await paid_order(customer)
    await customer.wait_until_status(order_id, "paid")
    await wait_outcome(customer.stack, payment_id, "order.payment_applied")
    return order_id, payment_id


async def wait_redelivery(stack: EmbeddedStack) -> None:
    async def redelivered() -> bool:
        return stack.system.orders.consumer.stats.duplicates >= 1

    await eventually(redelivered, what="a second copy reaching the inbox")


async def paid_order(customer: Customer) -> tuple[str, str]:
    order_id = await customer.order()
    payment_id = await customer.pay(await customer.checkout(order_id))
    return order_id, payment_id


async def test_order_transaction_failure_keeps_the_event_pending_until_it_clears(
    make_stack: StackFactory, http: httpx.AsyncClient, backend: str
):
    faults = Faults()
    faults.arm(FaultPoint.ORDER_CONSUMER_BEFORE_COMMIT, times=None)
    async with make_stack(faults=faults) as stack:
        customer = Customer(stack, http)
        order_id, payment_id = await paid_order(customer)

        async def retried() -> bool:
            return faults.fired[FaultPoint.ORDER_CONSUMER_BEFORE_COMMIT] >= 2

        await eventually(retried, what="the event being retried")
        assert (await customer.order_status(order_id))["status"] == "pending_payment"
        if backend != "postgres+rabbitmq":  # in-process: the row waits in the outbox
            rows = await outbox_rows(adapters_of(stack).payments_db)
            assert [r.status for r in rows if r.payment_id == payment_id] == ["pending"]

        faults.disarm(FaultPoint.ORDER_CONSUMER_BEFORE_COMMIT)
        await customer.wait_until_status(order_id, "paid")
        await wait_outcome(stack, payment_id, "order.payment_applied")
        rows = await outbox_rows(adapters_of(stack).payments_db)
        assert [r.status for r in rows if r.payment_id == payment_id] == ["sent"]
        assert stack.system.orders.consumer.stats.consumed == 1


async def test_crash_after_webhook_recorded_is_retried_by_the_gateway(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    faults = Faults()
    faults.arm(FaultPoint.WEBHOOK_AFTER_RECORD, times=1)
    async with make_stack(faults=faults) as stack:
        customer = Customer(stack, http)
        order_id, payment_id = await paid_order(customer)
        await customer.wait_until_status(order_id, "paid")
        assert faults.fired[FaultPoint.WEBHOOK_AFTER_RECORD] == 1
        assert stack.simulator.stats.failed_attempts >= 1  # the 500 it got, then a retry
        await wait_outcome(stack, payment_id, "order.payment_applied")
        events = [r for r in await outbox_rows(adapters_of(stack).payments_db)
                  if r.payment_id == payment_id]
        assert len(events) == 1


async def test_gateway_down_leaves_the_notification_stored_and_retried(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack() as stack:
        customer = Customer(stack, http)
        order_id = await customer.order()
        preference_id = await customer.checkout(order_id)
        stack.simulator.set_faults(SimulatorFaults(api_error_rate=1.0))
        await customer.pay(preference_id)

        async def retried() -> bool:
            async with adapters_of(stack).payments_db.read() as conn:
                row = (await conn.execute(select(t.notifications))).first()
            return row is not None and row.attempts >= 2 and row.status == "received"

        await eventually(retried, what="the processor retrying the gateway")
        assert (await customer.order_status(order_id))["status"] == "pending_payment"
        stack.simulator.set_faults(SimulatorFaults())
        await customer.wait_until_status(order_id, "paid")


async def test_processor_crash_before_commit_loses_nothing(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    faults = Faults()
    faults.arm(FaultPoint.PROCESSOR_BEFORE_COMMIT, times=2)
    async with make_stack(faults=faults) as stack:
        customer = Customer(stack, http)
        order_id, payment_id = await paid_order(customer)
        await customer.wait_until_status(order_id, "paid")
        assert faults.fired[FaultPoint.PROCESSOR_BEFORE_COMMIT] == 2
        events = [r for r in await outbox_rows(adapters_of(stack).payments_db)
                  if r.payment_id == payment_id]
        assert len(events) == 1


async def test_crash_between_commit_and_publish_publishes_later(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    faults = Faults()
    faults.arm(FaultPoint.RELAY_BEFORE_PUBLISH, times=3)
    async with make_stack(faults=faults) as stack:
        customer = Customer(stack, http)
        await paid_and_answered(customer)
        assert faults.fired[FaultPoint.RELAY_BEFORE_PUBLISH] == 3
        assert stack.system.orders.consumer.stats.duplicates == 0


async def test_published_but_not_marked_sent_is_absorbed_by_the_inbox(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    faults = Faults()
    faults.arm(FaultPoint.RELAY_AFTER_PUBLISH, times=1)
    async with make_stack(faults=faults) as stack:
        customer = Customer(stack, http)
        order_id, _ = await paid_and_answered(customer)
        await wait_redelivery(stack)
        order = await customer.order_status(order_id)
        assert order["status"] == "paid" and order["version"] == 2  # moved exactly once


async def test_consumer_crash_before_ack_redelivers_and_repeats_the_outcome(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    faults = Faults()
    faults.arm(FaultPoint.ORDER_CONSUMER_AFTER_COMMIT, times=1)
    async with make_stack(faults=faults) as stack:
        customer = Customer(stack, http)
        order_id, _ = await paid_and_answered(customer)
        await wait_redelivery(stack)
        replies = await outbox_rows(adapters_of(stack).orders_db, t.orders_outbox)
        assert len(replies) == 1  # the repeated answer reuses the first one's message id
        assert (await customer.order_status(order_id))["version"] == 2


async def test_outcome_not_recorded_is_delivered_again(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    faults = Faults()
    faults.arm(FaultPoint.OUTCOME_CONSUMER_BEFORE_COMMIT, times=2)
    async with make_stack(faults=faults) as stack:
        customer = Customer(stack, http)
        _, payment_id = await paid_order(customer)
        await wait_outcome(stack, payment_id, "order.payment_applied")
        assert faults.fired[FaultPoint.OUTCOME_CONSUMER_BEFORE_COMMIT] == 2


async def test_duplicated_and_reordered_notifications_pay_once(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    noisy = SimulatorFaults(seed=3, duplicate_rate=1.0, delay_max=0.05, reorder=True)
    async with make_stack(simulator_faults=noisy) as stack:
        customer = Customer(stack, http)
        order_id = await customer.order()
        preference_id = await customer.checkout(order_id)
        first = await customer.pay(preference_id, "pending_then_approve")
        second = await customer.pay(preference_id, "approve")
        await customer.wait_until_status(order_id, "paid")

        async def both_answered() -> bool:
            return all([(await outcome_of(stack, pid))[0] for pid in (first, second)])

        await eventually(both_answered)
        outcomes = {pid: await outcome_of(stack, pid) for pid in (first, second)}
        kinds = sorted(o[0] for o in outcomes.values())
        assert kinds == ["order.payment_applied", "order.payment_rejected"]
        assert ("order.payment_rejected", "already_paid") in outcomes.values()
        paid_by = (await customer.order_status(order_id))["paid_by"]
        assert outcomes[paid_by] == ("order.payment_applied", None)
