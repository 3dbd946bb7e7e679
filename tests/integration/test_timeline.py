"""The per-order timeline: every recorded step of a payment's life, from both databases."""

from __future__ import annotations

import httpx

from payrelay.adapters.storage.queries import order_timeline
from tests.support import Customer, StackFactory, adapters_of, eventually


async def test_a_paid_order_tells_its_story_in_order(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack() as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("13.00")
        preference = await customer.checkout(order_id)
        first = await customer.pay(preference)
        await customer.wait_until_status(order_id, "paid")
        second = await customer.pay(preference)
        db_p, db_o = adapters_of(stack).payments_db, adapters_of(stack).orders_db

        async def refunded() -> bool:
            steps = [e.step for e in await order_timeline(db_p, db_o, order_id)]
            return "refund.succeeded" in steps

        await eventually(refunded)
        entries = await order_timeline(db_p, db_o, order_id)
        steps = [(e.side, e.step, e.payment_id) for e in entries]
        assert steps[:2] == [("orders", "order.created", None),
                             ("payments", "checkout.created", None)]
        # Deliveries, fetches and publishes are traced too (issue 12); these are the changes.
        tracing = ("notification.", "gateway.", "outbox.")
        first_steps = [s for s in steps if s[2] == first and not s[1].startswith(tracing)]
        assert [s[1] for s in first_steps][:3] == [
            "payment.approved", "order.payment_applied", "outcome.order.payment_applied",
        ]
        second_steps = [s[1] for s in steps if s[2] == second]
        for step in ("payment.approved", "order.payment_rejected", "refund.requested",
                     "refund.succeeded"):
            assert step in second_steps
        assert [e.at for e in entries] == sorted(e.at for e in entries)
