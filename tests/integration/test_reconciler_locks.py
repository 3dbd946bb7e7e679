"""On PostgreSQL, the reconciler re-sending approvals and the outcome consumer recording
their answers touch the same payments rows at the same time: neither may deadlock.

The stack runs only what brings the approvals to the order side; the test then drives the
outcome consumer (several batches at once, each in its own order) and the reconciler
directly and concurrently, round after round, with every approval still unanswered.
"""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from sqlalchemy import delete, func, select, update

from payrelay.adapters.storage import tables as t
from payrelay.entrypoints.embedded import EmbeddedStack
from payrelay.ports import Delivery
from payrelay.system import Role
from tests.support import Customer, StackFactory, adapters_of, eventually

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("backend", ["postgres"], indirect=True),
]

ORDERS = 40
ROUNDS = 6
MAX_ROUNDS = 60
UP_TO_THE_ORDER_SIDE = {Role.PROCESSOR, Role.PAYMENTS_RELAY, Role.ORDER_CONSUMER}


async def outcome_deliveries(stack: EmbeddedStack) -> list[Delivery]:
    """The order side's answers, as the outcome consumer would receive them."""
    o = t.orders_outbox
    async with adapters_of(stack).orders_db.read() as conn:
        rows = (await conn.execute(select(o.c.message_id, o.c.routing_key, o.c.body))).all()
    return [Delivery(message_id=m, routing_key=k, body=b) for m, k, b in rows]


async def forget_the_answers(stack: EmbeddedStack) -> None:
    """As if no answer had been recorded yet: every approval is unanswered again."""
    p = t.payments
    async with adapters_of(stack).payments_db.transaction() as conn:
        await conn.execute(
            update(p).values(
                order_outcome=None, outcome_reason=None, outcome_at=None,
                outcome_order_version=None,
            )
        )
        await conn.execute(delete(t.payments_inbox))


async def answered(stack: EmbeddedStack) -> int:
    p = t.payments
    query = select(func.count()).where(p.c.order_outcome == "order.payment_applied")
    async with adapters_of(stack).payments_db.read() as conn:
        return int((await conn.execute(query)).scalar_one())


async def record_while_reconciling(stack: EmbeddedStack, batches: list[list[Delivery]]) -> int:
    """Run the consumer's batches and reconciler runs together; returns the approvals the
    reconciler re-sent meanwhile."""
    consumers = [asyncio.create_task(stack.system.payments.outcomes.handle(b)) for b in batches]
    resent = 0
    while not all(task.done() for task in consumers):
        resent += len((await stack.system.payments.reconciler.run_once()).resent_approvals)
    await asyncio.gather(*consumers)  # a deadlock would surface here as the driver's error
    return resent


async def test_resending_approvals_while_their_answers_are_recorded_never_deadlocks(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    # An SLA of a millisecond: every run finds every unanswered approval overdue.
    async with make_stack(roles=UP_TO_THE_ORDER_SIDE, reconcile_outcome_sla_seconds=0.001) as stack:
        customer = Customer(stack, http)
        order_ids = [await customer.order("12.00") for _ in range(ORDERS)]
        for order_id in order_ids:
            await customer.pay(await customer.checkout(order_id))
        for order_id in order_ids:
            await customer.wait_until_status(order_id, "paid", timeout=30)

        async def all_answers_written() -> bool:
            return len(await outcome_deliveries(stack)) >= ORDERS

        await eventually(all_answers_written, timeout=30, what="the order side's answers")
        deliveries = await outcome_deliveries(stack)
        rng = random.Random(7)
        resent = 0
        # At least ROUNDS rounds, and more until the two have met in flight: a batch is a
        # few statements now, so a round where the consumer finishes first is common.
        for round_number in range(MAX_ROUNDS):
            if round_number >= ROUNDS and resent > 0:
                break
            await forget_the_answers(stack)
            shuffled = rng.sample(deliveries, len(deliveries))
            # Small batches, many transactions: a batch is a few statements, and the
            # reconciler must meet them in flight.
            batches = [shuffled[i:i + 2] for i in range(0, len(shuffled), 2)]
            resent += await record_while_reconciling(stack, batches)
            assert await answered(stack) == ORDERS

        assert resent > 0  # the two did meet
        for order_id in order_ids:
            assert (await customer.order_status(order_id))["status"] == "paid"
