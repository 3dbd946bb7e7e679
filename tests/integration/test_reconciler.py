"""The reconciler heals what no message brought: lost webhooks and lost answers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import delete, select, update

from payrelay.adapters.storage import tables as t
from payrelay.entrypoints.embedded import EmbeddedStack
from payrelay.simulator.faults import SimulatorFaults
from tests.support import Customer, StackFactory, adapters_of, eventually

pytestmark = pytest.mark.parametrize(
    "backend", ["sqlite", "postgres", "postgres+rabbitmq"], indirect=True
)

QUICK = {
    "reconcile_interval_seconds": 0.2,
    "reconcile_checkout_age_seconds": 0.3,
    "reconcile_outcome_sla_seconds": 0.5,
    "reconcile_unsettled_age_seconds": 0.5,
}


async def test_lost_webhooks_are_recovered_by_searching_the_gateway(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    # The gateway never notifies: only the reconciler can learn of these payments.
    async with make_stack(simulator_faults=SimulatorFaults(drop_all=True), **QUICK) as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("18.00")
        payment_id = await customer.pay(await customer.checkout(order_id))
        await customer.wait_until_status(order_id, "paid")
        assert (await customer.order_status(order_id))["paid_by"] == payment_id
        assert stack.simulator.stats.delivered == 0
        assert stack.simulator.stats.dropped >= 1
        async with adapters_of(stack).payments_db.read() as conn:
            actions = (await conn.execute(select(t.notifications.c.action))).scalars().all()
            runs = (await conn.execute(select(t.reconciliation_runs.c.report))).scalars().all()
        assert set(actions) == {"reconciler"}
        assert any(payment_id in report for report in runs)


async def test_a_lost_answer_is_healed_by_resending_the_approval(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack(**QUICK) as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("11.00")
        payment_id = await customer.pay(await customer.checkout(order_id))
        await customer.wait_until_status(order_id, "paid")
        db = adapters_of(stack).payments_db

        async def answered() -> bool:
            async with db.read() as conn:
                outcome = (await conn.execute(select(t.payments.c.order_outcome).where(
                    t.payments.c.payment_id == payment_id))).scalar_one()
            return outcome == "order.payment_applied"

        await eventually(answered)
        # Forget the answer, as if the broker had lost it after confirming it.
        long_ago = datetime.now(UTC) - timedelta(hours=1)
        async with db.transaction() as conn:
            await conn.execute(update(t.payments).values(order_outcome=None, updated_at=long_ago))
            await conn.execute(delete(t.payments_inbox))
        await eventually(answered, what="the answer coming back after a re-sent approval")
        order = await customer.order_status(order_id)
        assert order["status"] == "paid" and order["version"] == 2  # applied once only
        assert stack.system.orders.consumer.stats.duplicates >= 1
        async with adapters_of(stack).orders_db.read() as conn:
            replies = (await conn.execute(select(t.orders_outbox))).all()
        assert len(replies) == 1  # the same answer, sent again under its own message id


async def test_payments_left_pending_are_fetched_again(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack(**QUICK) as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("5.00")
        payment_id = await customer.pay(await customer.checkout(order_id), "pending")
        db = adapters_of(stack).payments_db

        async def stored_pending() -> bool:
            async with db.read() as conn:
                status = (await conn.execute(select(t.payments.c.status).where(
                    t.payments.c.payment_id == payment_id))).scalar_one_or_none()
            return status == "pending"

        await eventually(stored_pending)
        # Approved at the gateway with no notification: only a refetch can see it.
        stack.simulator.set_faults(SimulatorFaults(drop_all=True))
        await stack.simulator.set_status(payment_id, "approved")
        await customer.wait_until_status(order_id, "paid")


async def checkout_searched(stack: EmbeddedStack, order_id: str) -> bool:
    c = t.checkouts
    query = select(c.c.reconciled_at).where(c.c.order_id == order_id)
    async with adapters_of(stack).payments_db.read() as conn:
        return (await conn.execute(query)).scalar_one_or_none() is not None


async def paid_and_searched(customer: Customer, total: str) -> tuple[str, str, str]:
    """An order paid once, whose checkout a reconciliation run has searched since:
    (order id, preference id, the paying payment's id)."""
    order_id = await customer.order(total)
    preference_id = await customer.checkout(order_id)
    first = await customer.pay(preference_id)
    await customer.wait_until_status(order_id, "paid")
    await eventually(lambda: checkout_searched(customer.stack, order_id),
                     what="a reconciliation run that searched the checkout")
    return order_id, preference_id, first


async def test_a_late_second_payment_whose_webhook_is_lost_is_refunded_once(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    # Issue 7: the checkout was searched once, after its approved payment; a second payment
    # made later, its webhook lost, was never looked for and the customer paid twice.
    async with make_stack(**QUICK) as stack:
        customer = Customer(stack, http)
        order_id, preference_id, first = await paid_and_searched(customer, "30.00")

        stack.simulator.set_faults(SimulatorFaults(drop_payment_ids=frozenset({"1000000002"})))
        second = await customer.pay(preference_id)
        assert second == "1000000002"

        async def refunded() -> bool:
            return stack.simulator.ledger_entry(order_id).refunded > 0

        await eventually(refunded, timeout=15, what="the second payment refunded")
        await asyncio.sleep(0.5)  # time for a wrong second refund to show, were there one
        entry = stack.simulator.ledger_entry(order_id)
        assert stack.simulator.refunds(first) == []
        assert [r["amount"] for r in stack.simulator.refunds(second)] == [Decimal("30.00")]
        assert (entry.charged, entry.refunded, entry.net) == (
            Decimal("60.00"), Decimal("30.00"), Decimal("30.00")
        )
        order = await customer.order_status(order_id)
        assert (order["status"], order["paid_by"]) == ("paid", first)
        async with adapters_of(stack).payments_db.read() as conn:
            actions = (await conn.execute(select(t.notifications.c.action).where(
                t.notifications.c.resource_id == second))).scalars().all()
        assert "reconciler" in actions  # the sweep found it...
        assert not [a for a in actions if a and a.startswith("payment.")]  # ...no webhook came


@pytest.mark.parametrize("lost", ["all webhooks", "the approval's webhook"])
async def test_an_approval_after_31_rejected_attempts_with_its_webhook_lost_pays_the_order(
    make_stack: StackFactory, http: httpx.AsyncClient, lost: str
):
    # Issue 7: the checkout's search read MercadoPago's first page (30) only.
    faults = SimulatorFaults(
        drop_all=lost == "all webhooks", drop_payment_ids=frozenset({"1000000032"})
    )
    async with make_stack(simulator_faults=faults, **QUICK) as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("9.00")
        preference_id = await customer.checkout(order_id)
        for _ in range(31):
            await customer.pay(preference_id, "reject")
        approved = await customer.pay(preference_id)
        assert approved == "1000000032"

        await customer.wait_until_status(order_id, "paid", timeout=20)

        assert (await customer.order_status(order_id))["paid_by"] == approved
        entry = stack.simulator.ledger_entry(order_id)
        assert (entry.charged, entry.refunded) == (Decimal("9.00"), Decimal(0))
