"""Legacy IPN (`?topic=payment&id=N`, unsigned): a hint that makes payrelay ask the gateway.

What an IPN may cost is bounded (one row, one fetch per id per window), what it says is never
trusted (only an id of the right shape is kept), and it is no way around a webhook's signature.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from payrelay.adapters.gateways.wire import AiohttpWire
from payrelay.adapters.storage import tables as t
from payrelay.faults import Faults
from payrelay.services.ingest import IncomingWebhook, WebhookIngest
from payrelay.simulator import NotificationStyle, SimulatorFaults
from tests.support import (
    FAST_DELIVERY,
    Customer,
    StackFactory,
    SteppedClock,
    adapters_of,
    eventually,
)

SECRET = "payrelay-simulator-webhook-secret"


async def post_ipn(
    http: httpx.AsyncClient, base_url: str, params: dict[str, str], **kwargs: object
) -> httpx.Response:
    return await http.post(f"{base_url}/webhooks/mercadopago", params=params, **kwargs)  # type: ignore[arg-type]


async def notification_rows(stack, resource_id: str) -> list:
    async with adapters_of(stack).payments_db.read() as conn:
        query = select(t.notifications).where(t.notifications.c.resource_id == resource_id)
        return list((await conn.execute(query)).all())


def count_payment_fetches(stack) -> list[str]:
    """The payment ids payrelay's gateway client GETs from the simulator, as it does."""
    fetched: list[str] = []

    def seen(method: str, path: str) -> None:
        parts = path.split("/")
        if method == "GET" and parts[1:3] == ["v1", "payments"] and parts[3].isdigit():
            fetched.append(parts[3])

    (wire,) = [c for c in adapters_of(stack).http_clients
               if isinstance(c, AiohttpWire) and c.base_url == stack.simulator_url]
    wire.watchers.append(seen)
    return fetched


async def test_unsigned_ipn_alone_gets_the_order_paid_within_seconds(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    # The simulator speaks only legacy IPN: no signature, no body, ?topic=payment&id=N.
    delivery = dataclasses.replace(FAST_DELIVERY, style=NotificationStyle.IPN)
    async with make_stack(delivery=delivery, ipn_window_seconds=0.5) as stack:
        customer = Customer(stack, http)
        order_id = await customer.order()
        payment_id = await customer.pay(await customer.checkout(order_id))
        await customer.wait_until_status(order_id, "paid", timeout=5)
        assert (await customer.order_status(order_id))["paid_by"] == payment_id
        rows = await notification_rows(stack, payment_id)
        assert [(r.topic, r.status, r.request_id) for r in rows] == [
            ("payment", "processed", None)]
        assert stack.simulator.stats.delivered == stack.simulator.stats.sent == 1


async def test_unsigned_ipn_is_recorded_as_a_hint_due_at_its_window_end(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack(start_workers=False, ipn_window_seconds=5) as stack:
        response = await post_ipn(http, stack.payments_url, {"topic": "payment", "id": "777"},
                                  headers={"x-request-id": "attacker-chosen"})
        assert response.status_code == 200 and response.json() == {"status": "recorded"}
        (row,) = await notification_rows(stack, "777")
        assert (row.topic, row.status, row.request_id, row.action) == (
            "payment", "received", None, None)
        assert row.dedupe_key.startswith("mercadopago:payment:777:ipn:")
        assert row.received_at < row.next_attempt_at <= row.received_at + timedelta(seconds=5)
        assert row.next_attempt_at.timestamp() % 5 == 0


async def test_ipns_merge_within_a_window_and_not_across(make_stack: StackFactory):
    async with make_stack(start_workers=False) as stack:
        window = timedelta(seconds=5)
        start = datetime(2026, 1, 1, tzinfo=UTC)  # a window boundary
        now = [start]
        ingest = WebhookIngest(
            provider="mercadopago", secrets=lambda: [SECRET],
            log=stack.system.payments.notification_log, clock=lambda: now[0],
            faults=Faults(), ipn_window=window,
        )
        ipn = IncomingWebhook(query={"topic": "payment", "id": "42"}, headers={}, body=b"")
        outcomes = []
        for moment in (start, start + window - timedelta(microseconds=1), start + window):
            now[0] = moment
            outcomes.append((await ingest.ingest(ipn)).value)
        assert outcomes == ["recorded", "duplicate", "recorded"]
        rows = await notification_rows(stack, "42")
        assert [r.next_attempt_at for r in rows] == [start + window, start + 2 * window]


async def test_ipn_flood_for_one_id_makes_one_row_and_one_gateway_fetch(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    clock, window = SteppedClock(), timedelta(seconds=60)
    # The simulator's own notifications are dropped: only the IPNs below tell payrelay.
    async with make_stack(simulator_faults=SimulatorFaults(drop_all=True), clock=clock,
                          ipn_window_seconds=window.total_seconds()) as stack:
        fetched = count_payment_fetches(stack)
        customer = Customer(stack, http)
        order_id = await customer.order()
        payment_id = await customer.pay(await customer.checkout(order_id))
        clock.skip_to_window_start(window)  # the whole flood lands in one window
        params = {"topic": "payment", "id": payment_id}
        answers = await asyncio.gather(
            *(post_ipn(http, stack.payments_url, params) for _ in range(200))
        )
        assert collections.Counter(a.json()["status"] for a in answers) == {
            "recorded": 1, "duplicate": 199}
        assert len(await notification_rows(stack, payment_id)) == 1
        assert fetched == []  # nothing is fetched before the window ends...
        clock.advance(window)
        await customer.wait_until_status(order_id, "paid")
        assert fetched == [payment_id]  # ...and then once


async def test_merchant_order_ipn_is_acknowledged_and_recorded_as_ignored(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack(start_workers=False) as stack:
        for topic in ("merchant_order", "chargebacks"):
            params = {"topic": topic, "id": "9000000001"}
            first = await post_ipn(http, stack.payments_url, params)
            again = await post_ipn(http, stack.payments_url, params)
            assert (first.status_code, first.json()) == (200, {"status": "ignored"})
            assert (again.status_code, again.json()) == (200, {"status": "ignored"})
        rows = await notification_rows(stack, "9000000001")
        assert sorted((r.topic, r.status) for r in rows) == [
            ("chargebacks", "ignored"), ("merchant_order", "ignored")]


@pytest.mark.parametrize(
    "params",
    [
        {"topic": "payment"},
        {"topic": "payment", "id": ""},
        {"topic": "payment", "id": "abc"},
        {"topic": "payment", "id": "12a"},
        {"topic": "payment", "id": "-1"},
        {"topic": "payment", "id": " 123"},
        {"topic": "payment", "id": "0123"},  # the same payment as 123 to the gateway
        {"topic": "payment", "id": "1" * 20},
        {"topic": "payment", "id": "\u0661\u0662\u0663"},  # digits, but not ASCII ones
        {"topic": "payment", "id": "1/../../v1/payments/search"},
        {"topic": "Payment!", "id": "123"},
        {"topic": "p" * 33, "id": "123"},
    ],
)
async def test_malformed_ipn_is_refused_with_400(
    make_stack: StackFactory, http: httpx.AsyncClient, params: dict[str, str]
):
    async with make_stack(start_workers=False) as stack:
        response = await post_ipn(http, stack.payments_url, params)
        assert response.status_code == 400
        assert "error" in response.json()
        async with adapters_of(stack).payments_db.read() as conn:
            assert (await conn.execute(select(t.notifications))).first() is None


@pytest.mark.parametrize(
    "params",
    [
        {"data.id": "1000000999", "type": "payment"},
        {"topic": "payment", "id": "1000000999", "type": "payment"},
        {"topic": "payment", "id": "1000000999", "data.id": "1000000999"},
        {"topic": "payment", "data.id": "1000000999", "type": "payment"},
    ],
)
async def test_a_webhook_without_signature_is_401_even_dressed_as_ipn(
    make_stack: StackFactory, http: httpx.AsyncClient, params: dict[str, str]
):
    async with make_stack(start_workers=False) as stack:
        body = '{"type": "payment", "data": {"id": "1000000999"}}'
        response = await post_ipn(http, stack.payments_url, params, content=body)
        assert response.status_code == 401
        assert await notification_rows(stack, "1000000999") == []


async def test_ipn_for_a_made_up_id_ends_dead_after_the_grace(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack(ipn_window_seconds=0.1, not_visible_grace_seconds=1.0) as stack:
        fetched = count_payment_fetches(stack)
        answer = await post_ipn(http, stack.payments_url, {"topic": "payment", "id": "123"})
        assert answer.json() == {"status": "recorded"}

        async def dead() -> bool:
            (row,) = await notification_rows(stack, "123")
            return bool(row.status == "dead")

        await eventually(dead, what="the made-up id given up")
        (row,) = await notification_rows(stack, "123")
        assert row.last_error.startswith("not_visible") and "HTTP 404" in row.last_error
        assert set(fetched) == {"123"} and len(fetched) <= 12  # bounded, then never again
