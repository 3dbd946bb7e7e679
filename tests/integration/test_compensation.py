"""Approved payments the order cannot use are refunded exactly once, against the ledger."""

from __future__ import annotations

import logging
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from payrelay.adapters.storage import tables as t
from payrelay.entrypoints.embedded import EmbeddedStack
from payrelay.faults import FaultPoint, Faults
from payrelay.ports import Delivery
from payrelay.simulator.faults import SimulatorFaults
from payrelay.system import WORKER_ROLES, Role
from tests.support import Customer, StackFactory, adapters_of, eventually

pytestmark = pytest.mark.parametrize(
    "backend", ["sqlite", "postgres", "postgres+rabbitmq"], indirect=True
)


async def refund_rows(stack: EmbeddedStack, order_id: str) -> list:
    async with adapters_of(stack).payments_db.read() as conn:
        query = select(t.refunds).where(t.refunds.c.order_id == order_id)
        return list((await conn.execute(query)).all())


async def wait_refunded(stack: EmbeddedStack, order_id: str, amount: str) -> None:
    async def done() -> bool:
        rows = await refund_rows(stack, order_id)
        entry = stack.simulator.ledger_entry(order_id)
        return bool(rows) and all(r.status == "succeeded" for r in rows) \
            and entry.refunded == Decimal(amount)

    await eventually(done, what=f"refund of {amount} for {order_id}")


async def test_second_payment_for_a_paid_order_is_refunded_once(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    faults = Faults()
    faults.arm(FaultPoint.RELAY_AFTER_PUBLISH, times=4)  # answers delivered more than once
    async with make_stack(faults=faults) as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("40.00")
        preference = await customer.checkout(order_id)
        first = await customer.pay(preference)
        await customer.wait_until_status(order_id, "paid")
        second = await customer.pay(preference)
        await wait_refunded(stack, order_id, "40.00")
        entry = stack.simulator.ledger_entry(order_id)
        assert entry.charged == Decimal("80.00") and entry.net == Decimal("40.00")
        assert [r.payment_id for r in await refund_rows(stack, order_id)] == [second]
        assert (await customer.order_status(order_id))["paid_by"] == first
        assert len(stack.simulator.refunds(second)) == 1
        assert stack.simulator.refunds(first) == []


async def test_rejection_delivered_many_times_refunds_once(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack() as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("15.00")
        preference = await customer.checkout(order_id)
        await customer.pay(preference)
        await customer.wait_until_status(order_id, "paid")
        second = await customer.pay(preference)
        await wait_refunded(stack, order_id, "15.00")
        async with adapters_of(stack).orders_db.read() as conn:
            body = (await conn.execute(select(t.orders_outbox.c.message_id, t.orders_outbox.c.body)
                    .where(t.orders_outbox.c.payment_id == second))).one()
        again = Delivery(body.message_id, "order.payment_rejected", body.body, redelivered=True)
        for _ in range(5):
            await stack.system.payments.outcomes.handle([again])
        await stack.system.payments.refunder.run_once()
        assert len(stack.simulator.refunds(second)) == 1
        assert stack.simulator.ledger_entry(order_id).refunded == Decimal("15.00")


async def test_payment_after_cancellation_is_refunded(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack() as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("22.50")
        preference = await customer.checkout(order_id)
        cancelled = await http.post(f"{stack.orders_url}/orders/{order_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        # A client whose answer was lost retries: answered as the first time (seen in the
        # 20,000-payment chaos run, where a retried cancel was answered 409).
        again = await http.post(f"{stack.orders_url}/orders/{order_id}/cancel")
        assert again.status_code == 200 and again.json() == cancelled.json()
        await customer.pay(preference)
        await wait_refunded(stack, order_id, "22.50")
        assert [r.reason for r in await refund_rows(stack, order_id)] == ["order_cancelled"]
        assert stack.simulator.ledger_entry(order_id).net == Decimal("0")
        assert (await customer.order_status(order_id))["status"] == "cancelled"


async def test_payment_after_expiry_is_refunded(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack(order_expiry_seconds=0.2) as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("9.99")
        preference = await customer.checkout(order_id)
        await customer.wait_until_status(order_id, "expired")
        await customer.pay(preference)
        await wait_refunded(stack, order_id, "9.99")
        assert [r.reason for r in await refund_rows(stack, order_id)] == ["order_expired"]
        assert stack.simulator.ledger_entry(order_id).net == Decimal("0")


async def test_lost_refund_answer_is_resolved_by_asking_the_gateway(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    faults = Faults()
    faults.arm(FaultPoint.REFUND_ANSWER_LOST, times=1)
    async with make_stack(faults=faults) as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("30.00")
        preference = await customer.checkout(order_id)
        await customer.pay(preference)
        await customer.wait_until_status(order_id, "paid")
        second = await customer.pay(preference)
        await wait_refunded(stack, order_id, "30.00")
        assert faults.fired[FaultPoint.REFUND_ANSWER_LOST] == 1
        (row,) = await refund_rows(stack, order_id)
        assert row.attempts == 1 and row.gateway_refund_id is None  # found, not made again
        assert len(stack.simulator.refunds(second)) == 1
        assert stack.simulator.ledger_entry(order_id).net == Decimal("30.00")


@pytest.mark.parametrize("status", ["refunded", "charged_back"])
async def test_refund_or_chargeback_at_the_gateway_moves_a_paid_order_to_refunded(
    make_stack: StackFactory, http: httpx.AsyncClient, status: str
):
    async with make_stack() as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("19.90")
        payment_id = await customer.pay(await customer.checkout(order_id))
        await customer.wait_until_status(order_id, "paid")
        await stack.simulator.set_status(payment_id, status)
        await customer.wait_until_status(order_id, "refunded")
        assert await refund_rows(stack, order_id) == []  # nothing for payrelay to refund


async def test_a_refund_the_gateway_refuses_for_good_is_held_for_a_person(
    make_stack: StackFactory, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="payrelay.events")
    # The refunder is driven by hand, to let the payment be charged back first.
    async with make_stack(roles=WORKER_ROLES - {Role.REFUNDER}) as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("14.00")
        preference = await customer.checkout(order_id)
        await customer.pay(preference)
        await customer.wait_until_status(order_id, "paid")
        second = await customer.pay(preference)

        async def intent_recorded() -> bool:
            return bool(await refund_rows(stack, order_id))

        await eventually(intent_recorded)
        await stack.simulator.set_status(second, "charged_back")  # no longer refundable
        result = await stack.system.payments.refunder.run_once()
        assert result.held == 1
        (row,) = await refund_rows(stack, order_id)
        assert row.status == "held" and "refused" in row.last_error
        assert stack.simulator.refunds(second) == []
        (line,) = [r for r in caplog.records if "refund held" in r.getMessage()]
        assert (line.order_id, line.payment_id) == (order_id, second)  # type: ignore[attr-defined]
        assert line.levelno == logging.INFO and "refused" in line.getMessage()


async def test_the_earliest_approval_is_kept_even_when_it_arrives_last(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    # The first payment's notifications are lost: the second one pays the order first, and
    # the reconciler brings the first one in later. The keeper rule still keeps the first.
    lost_first = SimulatorFaults(drop_payment_ids=frozenset({"1000000001"}))
    async with make_stack(
        simulator_faults=lost_first,
        reconcile_interval_seconds=0.2,
        reconcile_checkout_age_seconds=0.6,
    ) as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("21.00")
        preference = await customer.checkout(order_id)
        first = await customer.pay(preference)
        assert first == "1000000001"
        second = await customer.pay(preference)
        await customer.wait_until_status(order_id, "paid")
        await wait_refunded(stack, order_id, "21.00")
        assert (await customer.order_status(order_id))["paid_by"] == first
        assert [r.payment_id for r in await refund_rows(stack, order_id)] == [second]
        assert stack.simulator.refunds(first) == []
        assert stack.simulator.ledger_entry(order_id).net == Decimal("21.00")


async def test_a_paid_order_cannot_be_cancelled(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack() as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("12.00")
        await customer.pay(await customer.checkout(order_id))
        await customer.wait_until_status(order_id, "paid")
        refused = await http.post(f"{stack.orders_url}/orders/{order_id}/cancel")
        assert refused.status_code == 409 and "is paid: cannot cancel" in refused.text
        assert (await customer.order_status(order_id))["status"] == "paid"
