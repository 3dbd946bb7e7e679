"""The payments service's webhook endpoint, over real loopback HTTP."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.payments import SqlNotificationLog
from payrelay.domain.signature import signature_header
from payrelay.entrypoints.http_server import EmbeddedServer
from payrelay.entrypoints.payments_api import create_public_app
from payrelay.entrypoints.rate_limit import KeyedBuckets
from payrelay.entrypoints.rejections import Rejections
from payrelay.faults import Faults
from payrelay.services.ingest import WebhookIngest
from payrelay.simulator.faults import SimulatorFaults
from tests.support import Customer, StackFactory, adapters_of, eventually

SECRET = "payrelay-simulator-webhook-secret"


def signed(
    payment_id: str,
    *,
    secret: str = SECRET,
    signed_id: str | None = None,
    request_id: str | None = None,
    body_id: str | None = None,
) -> dict[str, object]:
    """Request parts for a MercadoPago-style notification about `payment_id`."""
    request_id = request_id or str(uuid.uuid4())
    ts = int(time.time())
    header = signature_header(
        secret, data_id=signed_id or payment_id, request_id=request_id, ts=ts
    )
    body = {
        "id": 12345,
        "type": "payment",
        "action": "payment.updated",
        "data": {"id": body_id or payment_id},
    }
    return {
        "params": {"data.id": payment_id, "type": "payment"},
        "headers": {"x-signature": header, "x-request-id": request_id},
        "content": json.dumps(body),
    }


async def post(http: httpx.AsyncClient, url: str, parts: dict[str, object]) -> httpx.Response:
    return await http.post(f"{url}/webhooks/mercadopago", **parts)  # type: ignore[arg-type]


async def notifications_count(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(t.notifications)))
                   .scalar_one())


async def test_signed_notification_is_recorded(make_stack: StackFactory, http: httpx.AsyncClient):
    async with make_stack(start_workers=False) as stack:
        response = await post(http, stack.payments_url, signed("1000000999"))
        assert response.status_code == 200
        assert response.json() == {"status": "recorded"}
        assert await notifications_count(adapters_of(stack).payments_db) == 1


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda p: signed("1000000999", secret="not-the-secret"), "wrong secret"),
        (lambda p: signed("1000000999", signed_id="1000000998"), "tampered id"),
        (lambda p: {**p, "headers": {"x-request-id": "r"}}, "missing header"),
        (lambda p: {**p, "headers": {"x-signature": "ts=abc,v1=zz", "x-request-id": "r"}},
         "malformed header"),
        (lambda p: {**p, "headers": {"x-signature": "v1=" + "a" * 64}}, "no ts"),
        (lambda p: signed("1000000999", body_id="1000000998"), "body id differs"),
    ],
)
async def test_bad_signatures_are_rejected_with_401(
    make_stack: StackFactory, http: httpx.AsyncClient, mutate, why
):
    async with make_stack(start_workers=False) as stack:
        response = await post(http, stack.payments_url, mutate(signed("1000000999")))
        assert response.status_code == 401, why
        assert "error" in response.json()
        assert await notifications_count(adapters_of(stack).payments_db) == 0


async def test_rotation_accepts_active_secrets_and_refuses_retired_ones(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack(start_workers=False, webhook_secrets="new-secret,old-secret") as stack:
        assert (await post(http, stack.payments_url, signed("1", secret="old-secret"))
                ).status_code == 200
        assert (await post(http, stack.payments_url, signed("2", secret="new-secret"))
                ).status_code == 200
    async with make_stack(start_workers=False, webhook_secrets="new-secret") as stack:
        response = await post(http, stack.payments_url, signed("3", secret="old-secret"))
        assert response.status_code == 401


async def test_oversize_body_is_refused(make_stack: StackFactory, http: httpx.AsyncClient):
    async with make_stack(start_workers=False, webhook_max_body_bytes=1024) as stack:
        parts = signed("1000000999")
        parts["content"] = json.dumps({"type": "payment", "pad": "x" * 2000})
        response = await post(http, stack.payments_url, parts)
        assert response.status_code == 413
        assert await notifications_count(adapters_of(stack).payments_db) == 0


async def test_legacy_ipn_and_unused_topics(make_stack: StackFactory, http: httpx.AsyncClient):
    async with make_stack(start_workers=False) as stack:
        request_id = "ipn-1"
        header = signature_header(SECRET, data_id="777", request_id=request_id, ts=1)
        ipn = await http.post(
            f"{stack.payments_url}/webhooks/mercadopago",
            params={"topic": "payment", "id": "777"},
            headers={"x-signature": header, "x-request-id": request_id},
        )
        assert ipn.status_code == 200 and ipn.json() == {"status": "recorded"}
        header = signature_header(SECRET, data_id="55", request_id="r2", ts=int(time.time()))
        other = await http.post(
            f"{stack.payments_url}/webhooks/mercadopago",
            params={"data.id": "55", "type": "merchant_order"},
            headers={"x-signature": header, "x-request-id": "r2"},
            content=json.dumps({"type": "merchant_order", "data": {"id": "55"}}),
        )
        assert other.status_code == 200 and other.json() == {"status": "ignored"}


async def test_database_down_answers_503(make_stack: StackFactory, http: httpx.AsyncClient,
                                         tmp_path):
    async with make_stack(start_workers=False) as stack:
        # A database URL that names a directory: every commit fails as a dead disk would.
        broken = Database(f"sqlite+aiosqlite:///{tmp_path}")
        log = SqlNotificationLog(broken)
        ingest = WebhookIngest(
            provider="mercadopago", secrets=lambda: [SECRET], log=log,
            clock=lambda: stack.system.payments.uow._clock(), faults=Faults(),
        )
        side = dataclasses.replace(stack.system.payments, ingest=ingest)
        try:
            app = create_public_app(side, stack.system.transport, rejections=Rejections(),
                                    budget=KeyedBuckets(rate=1, burst=20, clock=time.monotonic))
            async with EmbeddedServer(app) as server:
                response = await post(http, server.base_url, signed("1000000999"))
        finally:
            await log.close()
            await broken.dispose()
        assert response.status_code == 503
        assert "error" in response.json()


async def test_same_notification_five_times_makes_one_event(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    # The simulator's own notifications are dropped: only the five copies below arrive.
    async with make_stack(simulator_faults=SimulatorFaults(drop_all=True)) as stack:
        customer = Customer(stack, http)
        order_id = await customer.order()
        payment_id = await customer.pay(await customer.checkout(order_id))
        parts = signed(payment_id, request_id="same-request")
        answers = [(await post(http, stack.payments_url, parts)).json()["status"]
                   for _ in range(5)]
        assert answers == ["recorded"] + ["duplicate"] * 4
        await customer.wait_until_status(order_id, "paid")

        async def outcome_recorded() -> bool:
            async with adapters_of(stack).payments_db.read() as conn:
                row = (await conn.execute(select(t.payments.c.order_outcome).where(
                    t.payments.c.payment_id == payment_id))).scalar_one()
            return row == "order.payment_applied"

        await eventually(outcome_recorded)
        async with adapters_of(stack).payments_db.read() as conn:
            events = (await conn.execute(select(t.payments_outbox.c.routing_key).where(
                t.payments_outbox.c.payment_id == payment_id))).scalars().all()
        assert events == ["payment.approved"]
        assert await notifications_count(adapters_of(stack).payments_db) == 1
