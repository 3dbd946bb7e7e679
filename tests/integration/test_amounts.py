"""Amounts by value, end to end: 1500.0 CLP and 25.1 ARS pay; 25.123 ARS is held, once.

MercadoPago writes amounts as JSON numbers. The simulator writes them as it holds them, so a
preference priced `1500.0` makes it answer `"transaction_amount":1500.0`. It holds only
amounts valid in their currency, so the payment with excess precision is served by hand
(tests/raw_gateway.py) to a system bootstrapped around the real MercadoPago adapter.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from payrelay.adapters.storage import tables as t
from payrelay.bootstrap import WORKER_ROLES, System, bootstrap, migrate
from payrelay.domain.money import Money
from payrelay.entrypoints.embedded import embedded_settings
from payrelay.ports import NotificationRecord, OrderLine
from payrelay.simulator.faults import SimulatorFaults
from payrelay.simulator.jsonio import dumps
from tests.raw_gateway import payment_body, raw_gateway
from tests.support import (
    FAST,
    Customer,
    StackFactory,
    adapters_of,
    eventually,
    fresh_postgres_databases,
)

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


async def notification_rows(system: System) -> list:
    async with adapters_of(system).payments_db.read() as conn:
        return list((await conn.execute(select(t.notifications))).all())


async def dead_letter_count(system: System) -> int:
    total = 0
    for db, table in ((adapters_of(system).payments_db, t.payments_dead_letters),
                      (adapters_of(system).orders_db, t.orders_dead_letters)):
        async with db.read() as conn:
            total += len((await conn.execute(select(table))).all())
    return total


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize(
    ("total", "currency", "price", "written"),
    [
        ("1500", "CLP", Decimal("1500.0"), b'"transaction_amount":1500.0,'),
        ("25.10", "ARS", Decimal("25.1"), b'"transaction_amount":25.1,'),
    ],
    ids=["1500.0-CLP", "25.1-ARS"],
)
async def test_an_amount_written_at_another_scale_pays_the_order(
    make_stack: StackFactory, http: httpx.AsyncClient,
    total: str, currency: str, price: Decimal, written: bytes,
):
    async with make_stack() as stack:
        customer = Customer(stack, http)
        order_id = await customer.order(total, currency)
        preference = stack.simulator.create_preference({
            "items": [{"title": "order", "quantity": 1, "unit_price": price,
                       "currency_id": currency}],
            "external_reference": order_id,
            "notification_url": stack.settings.notification_url,
        })["id"]
        payment_id = await customer.pay(preference)
        assert written in dumps(stack.simulator.payment(payment_id))
        await customer.wait_until_status(order_id, "paid")
        assert (await customer.order_status(order_id))["paid_by"] == payment_id
        notes = await notification_rows(stack.system)
        assert notes and all(n.status == "processed" and n.attempts == 0 for n in notes)


async def test_an_order_total_written_at_another_scale_is_taken_by_value(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack() as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("1500.0", "CLP")  # once a 422
        assert (await customer.order_status(order_id))["total"] == "1500"
        await customer.pay(await customer.checkout(order_id))
        await customer.wait_until_status(order_id, "paid")


@pytest.mark.parametrize("status", ["refunded", "charged_back"])
async def test_a_payment_first_seen_refunded_or_charged_back_reaches_its_final_state(
    make_stack: StackFactory, http: httpx.AsyncClient, status: str
):
    # Every webhook about the payment is lost: the reconciler brings it in, already
    # reversed, so the order's first event for it moves the order two steps at once.
    lost = SimulatorFaults(drop_payment_ids=frozenset({"1000000001"}))
    async with make_stack(
        simulator_faults=lost, reconcile_interval_seconds=0.2,
        reconcile_checkout_age_seconds=0.6,
    ) as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("19.90")
        payment_id = await customer.pay(await customer.checkout(order_id))
        assert payment_id == "1000000001"
        await stack.simulator.set_status(payment_id, status)
        await customer.wait_until_status(order_id, "refunded")
        view = await customer.order_status(order_id)
        assert (view["paid_by"], view["version"]) == (payment_id, 3)  # paid, then refunded

        async def answered() -> bool:
            async with adapters_of(stack).payments_db.read() as conn:
                row = (await conn.execute(select(t.payments))).one()
            return (row.status, row.version, row.order_outcome) == (
                status, 1, "order.payment_applied"
            )

        await eventually(answered, what="the order side's answer")
        assert await dead_letter_count(stack.system) == 0


# --- excess precision: stored, held for review, never retried ---------------------------


@contextlib.asynccontextmanager
async def raw_system(
    tmp_path: Path, backend: str, bodies: dict[str, bytes], seen: list[httpx.Request]
) -> AsyncIterator[System]:
    """The whole system on the local transport, its gateway serving `bodies` verbatim."""
    async with contextlib.AsyncExitStack() as stack:
        values = dict(FAST)
        if backend == "postgres":
            payments_url, orders_url = await stack.enter_async_context(
                fresh_postgres_databases(2)
            )
            values |= {"payments_database_url": payments_url, "orders_database_url": orders_url}
        settings = embedded_settings(tmp_path, **values)
        await migrate(settings)
        gateway, client = raw_gateway(bodies, seen=seen)
        stack.push_async_callback(client.aclose)
        system = await bootstrap(settings, gateway=gateway, seed=1)
        stack.push_async_callback(system.close)
        await system.start_workers(WORKER_ROLES)
        yield system


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize(
    ("total", "written", "currency"),
    [("25.12", "25.123", "ARS"), ("1500", "1500.5", "CLP")],
    ids=["25.123-ARS", "1500.5-CLP"],
)
async def test_excess_precision_is_stored_and_held_for_review_not_retried(
    tmp_path: Path, backend: str, total: str, written: str, currency: str,
    caplog: pytest.LogCaptureFixture,
):
    bodies: dict[str, bytes] = {}
    seen: list[httpx.Request] = []
    caplog.set_level(logging.INFO, logger="payrelay.events")  # business events are INFO
    async with raw_system(tmp_path, backend, bodies, seen) as system:
        price = Money.parse(total, currency)
        order = await system.orders.service.create(lines=[OrderLine("sku", 1, price)],
                                                   total=price)
        bodies["1000000001"] = payment_body(
            "1000000001", amount=written, currency=currency, order_id=order.order_id
        )
        assert await system.payments.notification_log.record(NotificationRecord(
            dedupe_key="mercadopago:payment:1000000001:created", provider="mercadopago",
            topic="payment", action="payment.created", resource_id="1000000001",
            request_id=None, received_at=datetime.now(UTC), ignored=False,
        ))
        system.payments.wake_processor.set()

        async def refund_held() -> bool:
            async with adapters_of(system).payments_db.read() as conn:
                return bool((await conn.execute(select(t.refunds))).all())

        await eventually(refund_held, what="the refund intent, held")
        held = await system.orders.service.get(order.order_id)
        assert held.status.value == "needs_review"
        assert held.review_reason is not None and held.review_reason.value == "amount_precision"
        async with adapters_of(system).payments_db.read() as conn:
            payment = (await conn.execute(select(t.payments))).one()
            refund = (await conn.execute(select(t.refunds))).one()
        assert (payment.amount_written, payment.amount_problem) == (written, "amount_precision")
        assert payment.amount_minor == price.minor_units  # rounded toward zero, and flagged
        assert (payment.order_outcome, payment.outcome_reason) == (
            "order.payment_rejected", "amount_precision"
        )
        assert (refund.status, refund.reason, refund.attempts) == ("held", "amount_precision", 0)
        (note,) = await notification_rows(system)
        assert (note.status, note.attempts, note.last_error) == ("processed", 0, None)
        assert await dead_letter_count(system) == 0
        # Fetched once (the reconciler's searches aside); no refund attempted.
        fetches = [r for r in seen if r.url.path == "/v1/payments/1000000001"]
        assert len(fetches) == 1 and all(r.method == "GET" for r in seen)
        held = [r for r in caplog.records if r.getMessage().startswith("refund held")]
        assert len(held) == 1, [r.getMessage() for r in caplog.records]
        assert (held[0].payment_id, held[0].order_id) == (  # type: ignore[attr-defined]
            "1000000001", order.order_id)
