"""Failure policy and dead letters on every transport: the consumer's retry schedule, then a
dead letter with its reason in the consumer's own database; poison never blocks the rest;
replay is idempotent."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import func, select

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.faults import FaultPoint, Faults
from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION
from payrelay.ports import OutboundMessage
from tests.support import Customer, StackFactory, adapters_of, eventually

pytestmark = pytest.mark.parametrize(
    "backend", ["sqlite", "postgres", "postgres+rabbitmq"], indirect=True
)

TOKEN = "admin-secret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUICK = {"consumer_retry_delays": "0.05,0.05", "admin_token": TOKEN}


async def dead_letters(http: httpx.AsyncClient, url: str) -> list[dict]:
    response = await http.get(f"{url}/admin/dead-letters", headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


async def test_exhausted_retries_dead_letter_without_blocking_the_rest_then_replay(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    faults = Faults()
    async with make_stack(faults=faults, **QUICK) as stack:
        customer = Customer(stack, http)
        poisoned = await customer.order("10.00")
        faults.arm(FaultPoint.ORDER_CONSUMER_BEFORE_COMMIT, times=None)
        await customer.pay(await customer.checkout(poisoned))

        async def dead() -> bool:
            return len(await dead_letters(http, stack.payments_internal_url)) == 1

        await eventually(dead, what="the event becoming a dead letter")
        faults.disarm()
        (letter,) = await dead_letters(http, stack.payments_internal_url)
        assert letter["routing_key"] == "payment.approved"
        assert letter["reason"] == "consumer retries exhausted"
        assert "InjectedFault" in letter["error"] and letter["attempts"] == 3
        # The next customer is not held back by the dead one.
        healthy = await customer.order("11.00")
        await customer.pay(await customer.checkout(healthy))
        await customer.wait_until_status(healthy, "paid")
        assert (await customer.order_status(poisoned))["status"] == "pending_payment"

        replay = await http.post(f"{stack.payments_internal_url}/admin/dead-letters/replay",
                                 json={"ids": [letter["id"]]}, headers=AUTH)
        assert replay.json() == {"replayed": [letter["id"]]}
        await customer.wait_until_status(poisoned, "paid")
        assert await dead_letters(http, stack.payments_internal_url) == []


async def count(db: Database, table: object) -> int:
    async with db.read() as conn:
        return int((await conn.execute(
            select(func.count()).select_from(table)  # type: ignore[arg-type]
        )).scalar_one())


async def test_a_poison_payment_event_is_dead_in_the_orders_database_before_it_is_sent(
    make_stack: StackFactory, http: httpx.AsyncClient, backend: str
):
    faults = Faults()
    async with make_stack(faults=faults, **QUICK) as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("13.00")
        faults.arm(FaultPoint.ORDER_CONSUMER_BEFORE_COMMIT, times=None)
        payment_id = await customer.pay(await customer.checkout(order_id))
        payments, orders = adapters_of(stack).payments_db, adapters_of(stack).orders_db
        seen: list[tuple[list[str], int]] = []

        async def dead_and_sent() -> bool:
            async with payments.read() as conn:
                status = list((await conn.execute(
                    select(t.payments_outbox.c.status)
                    .where(t.payments_outbox.c.payment_id == payment_id)
                )).scalars())
            seen.append((status, await count(orders, t.orders_dead_letters)))  # read second
            return seen[-1] == (["sent"], 1)

        await eventually(dead_and_sent, what="the event dead on the order side, and sent")
        faults.disarm()
        if backend != "postgres+rabbitmq":  # RabbitMQ confirms as soon as a queue holds it
            assert all(dead == 1 for status, dead in seen if status == ["sent"])
        # The first try and one per step of the consumer's schedule (QUICK: two steps).
        assert faults.fired[FaultPoint.ORDER_CONSUMER_BEFORE_COMMIT] == 3
        assert await count(payments, t.payments_dead_letters) == 0
        (letter,) = await dead_letters(http, stack.payments_internal_url)
        assert letter["id"].startswith("orders-")
        assert (letter["queue"], letter["exchange"]) == (
            ORDER_SIDE_SUBSCRIPTION.queue, ORDER_SIDE_SUBSCRIPTION.exchange)
        assert (letter["reason"], letter["attempts"]) == ("consumer retries exhausted", 3)
        assert (await customer.order_status(order_id))["status"] == "pending_payment"


async def test_replaying_a_message_whose_effect_happened_changes_nothing(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    faults = Faults()
    async with make_stack(faults=faults, **QUICK) as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("12.00")
        # Every try commits, then "crashes" before the ack: applied once, then dead.
        faults.arm(FaultPoint.ORDER_CONSUMER_AFTER_COMMIT, times=None)
        await customer.pay(await customer.checkout(order_id))

        async def dead() -> bool:
            return len(await dead_letters(http, stack.payments_internal_url)) == 1

        await eventually(dead)
        faults.disarm()
        assert (await customer.order_status(order_id))["version"] == 2
        duplicates = stack.system.orders.consumer.stats.duplicates
        replay = await http.post(f"{stack.payments_internal_url}/admin/dead-letters/replay",
                                 json={"all": True}, headers=AUTH)
        assert replay.status_code == 200

        async def redelivered() -> bool:
            return stack.system.orders.consumer.stats.duplicates > duplicates

        await eventually(redelivered, what="the replay meeting the inbox")
        order = await customer.order_status(order_id)
        assert order["status"] == "paid" and order["version"] == 2


async def test_undecodable_message_is_dead_lettered_at_once_with_its_reason(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack(**QUICK) as stack:
        garbage = OutboundMessage(
            message_id=uuid.uuid4(), exchange=ORDER_SIDE_SUBSCRIPTION.exchange,
            routing_key="payment.approved", correlation_id="c", body=b"{not json",
        )
        result = await stack.system.transport.publish([garbage])
        assert result.confirmed == {garbage.message_id}  # acked: retrying cannot help

        async def stored() -> bool:
            return len(await dead_letters(http, stack.payments_internal_url)) == 1

        await eventually(stored, what="the undecodable message stored as a dead letter")
        (letter,) = await dead_letters(http, stack.payments_internal_url)
        assert letter["id"].startswith("orders-")
        assert letter["reason"] == "permanent: undecodable message"
        assert letter["queue"] == ORDER_SIDE_SUBSCRIPTION.queue
        one = f"{stack.payments_internal_url}/admin/dead-letters/{letter['id']}"
        shown = await http.get(one, headers=AUTH)
        assert shown.json()["body"] == "{not json"
        purged = await http.delete(one, headers=AUTH)
        assert purged.json() == {"purged": [letter["id"]]}
        assert await dead_letters(http, stack.payments_internal_url) == []


async def test_admin_endpoints_need_the_token(make_stack: StackFactory, http: httpx.AsyncClient):
    async with make_stack(**QUICK) as stack:
        url = f"{stack.payments_internal_url}/admin/dead-letters"
        assert (await http.get(url)).status_code == 401
        assert (await http.get(url, headers={"Authorization": "Bearer wrong"})).status_code == 401
    async with make_stack() as stack:  # no token configured: disabled, not open
        response = await http.get(f"{stack.payments_internal_url}/admin/dead-letters",
                                  headers={"Authorization": "Bearer x"})
        assert response.status_code == 401
