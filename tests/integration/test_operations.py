"""Issue 12's "done when": support answers "I paid but my order says pending" in one command.

A payment walked through a gateway failure and a retry shows each step in its trace; with
the gateway failing every call the failure shows in `payrelay trace <order id>` and in
`payrelay status`; status reflects a backlog and a dead letter; a held refund released is
refunded exactly once at the gateway; the `/admin` endpoints answer the same.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import insert, select
from typer.testing import CliRunner

from payrelay.adapters.storage import tables as t
from payrelay.domain.money import Money
from payrelay.entrypoints.cli import app
from payrelay.entrypoints.embedded import EmbeddedStack
from payrelay.ports import NotificationRecord, RefundRequest, TraceStep
from payrelay.simulator.faults import SimulatorFaults
from tests.support import Customer, StackFactory, adapters_of, eventually

GATEWAY_DOWN = SimulatorFaults(seed=3, api_error_rate=1.0)


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


async def cli(stack: EmbeddedStack, *args: str) -> Ran:
    """`payrelay …` against the stack's databases, as an operator runs it: the real command
    line (typer's runner, in a thread with a loop of its own), while the stack keeps
    running; in process, because a fresh interpreter per call costs seconds here."""
    env = {
        "PAYRELAY_PAYMENTS_DATABASE_URL": stack.settings.payments_database_url,
        "PAYRELAY_ORDERS_DATABASE_URL": stack.settings.orders_database_url,
        "COLUMNS": "250",
    }
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    return Ran(result.exit_code, result.stdout, result.stderr)


async def ordered_and_paid_while_the_gateway_fails(
    stack: EmbeddedStack, http: httpx.AsyncClient
) -> tuple[str, str]:
    """An order whose payment's webhook arrived while every gateway call fails."""
    customer = Customer(stack, http)
    order_id = await customer.order("19.90")
    preference = await customer.checkout(order_id)
    stack.simulator.set_faults(GATEWAY_DOWN)
    payment_id = await customer.pay(preference)

    async def failed_twice() -> bool:
        steps = (await stack.system.operations.trace(order_id)).steps
        return sum(s.kind == "gateway.fetch_failed" for s in steps) >= 2

    await eventually(failed_twice, what="two failed fetches in the order's trace")
    return order_id, payment_id


def first(steps: tuple[TraceStep, ...], kind: str, after: int = -1) -> int:
    """The index of the first step of `kind` after index `after` (fails if none)."""
    for index, step in enumerate(steps):
        if index > after and step.kind == kind:
            return index
    raise AssertionError(f"no {kind} after step {after}: {[s.kind for s in steps]}")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_a_gateway_failure_and_its_retry_show_in_the_trace_in_order(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack() as stack:
        order_id, payment_id = await ordered_and_paid_while_the_gateway_fails(stack, http)
        stack.simulator.set_faults(SimulatorFaults())
        await Customer(stack, http).wait_until_status(order_id, "paid")

        async def answered() -> bool:
            steps = (await stack.system.operations.trace(order_id)).steps
            return any(s.kind == "outcome.order.payment_applied" for s in steps)

        await eventually(answered, what="the order side's answer in the trace")
        trace = await stack.system.operations.trace(order_id)

    assert trace.order_ids == (order_id,) and payment_id in trace.payment_ids
    steps = trace.steps
    at = first(steps, "notification.received")
    failed = first(steps, "gateway.fetch_failed", at)
    assert "HTTP 50" in steps[failed].detail and "next try" in steps[failed].detail
    assert steps[failed].payment_id == payment_id
    at = first(steps, "gateway.fetched", failed)
    assert "status approved" in steps[at].detail
    at = first(steps, "payment.approved", at)
    # Confirmed, so marked sent: in process, the order side may have applied it by then.
    published = first(steps, "outbox.published", at)
    assert "payment.approved" in steps[published].detail
    at = first(steps, "order.payment_applied", at)
    first(steps, "outcome.order.payment_applied", at)
    assert [s.at for s in steps] == sorted(s.at for s in steps)


async def test_with_the_gateway_failing_every_call_trace_and_status_say_so(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack(heartbeat_interval_seconds=0.2) as stack:
        order_id, payment_id = await ordered_and_paid_while_the_gateway_fails(stack, http)

        traced = await cli(stack, "trace", order_id, "--json")
        shown = await cli(stack, "trace", order_id)
        status = await cli(stack, "status", "--json")
        table = await cli(stack, "status")
        by_payment = await cli(stack, "trace", payment_id, "--json")
        unknown = await cli(stack, "trace", "no-such-order")

    assert traced.returncode == 0, traced.stderr
    document = json.loads(traced.stdout)
    assert document["order_ids"] == [order_id] and payment_id in document["payment_ids"]
    failures = [s for s in document["steps"] if s["kind"] == "gateway.fetch_failed"]
    assert failures and all(s["payment_id"] == payment_id for s in failures)
    assert all("HTTP 50" in s["detail"] and "next try" in s["detail"] for s in failures)
    assert "gateway.fetch_failed" in shown.stdout and "HTTP 50" in shown.stdout
    assert json.loads(by_payment.stdout)["order_ids"] == [order_id]

    assert status.returncode == 0, status.stderr
    pipeline = json.loads(status.stdout)
    assert pipeline["notifications_waiting"]["count"] >= 1
    assert pipeline["notifications_retrying"] >= 1 and pipeline["retrying"] >= 1
    assert "HTTP 50" in pipeline["last_notification_error"]
    assert pipeline["workers"] and all(w["up"] for w in pipeline["workers"])
    assert "processor" in pipeline["workers"][0]["roles"]
    assert "notifications retrying" in table.stdout and "HTTP 50" in table.stdout

    assert unknown.returncode == 2 and "nothing is recorded" in unknown.stderr


async def test_status_reflects_an_injected_backlog_and_a_dead_letter(
    make_stack: StackFactory
):
    async with make_stack(start_workers=False) as stack:
        before = json.loads((await cli(stack, "status", "--json")).stdout)
        for n in range(3):
            await stack.system.payments.notification_log.record(NotificationRecord(
                dedupe_key=f"test:{n}", provider="mercadopago", topic="payment",
                action="payment.updated", resource_id=f"12345{n}", request_id=None,
                received_at=stack.system.clock(), ignored=False))
        async with adapters_of(stack).orders_db.transaction() as conn:
            await conn.execute(insert(t.orders_dead_letters).values(
                message_id="m-1", routing_key="payment.approved", body=b"{}",
                reason="poison", error="ValueError: bad", attempts=5,
                dead_at=stack.system.clock()))
        after = await cli(stack, "status", "--json")

    assert after.returncode == 0, after.stderr
    status = json.loads(after.stdout)
    assert before["notifications_waiting"]["count"] == 0 and before["dead_letters"] == 0
    assert status["notifications_waiting"]["count"] == 3
    assert status["notifications_waiting"]["oldest_age_seconds"] >= 0
    assert status["dead_letters"] == 1
    assert status["workers"] == []  # no worker runs in this stack


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_a_released_held_refund_is_refunded_exactly_once_at_the_gateway(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack() as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("30.00")
        payment_id = await customer.pay(await customer.checkout(order_id))
        await customer.wait_until_status(order_id, "paid")
        held = RefundRequest(payment_id=payment_id, provider="mercadopago", order_id=order_id,
                             amount=Money.parse("30.00", "BRL"), reason="amount_mismatch")
        async with stack.system.payments.uow.begin() as tx:  # as a hold policy would
            await tx.refunds.request(held, hold=True, now=stack.system.clock())

        listed = json.loads((await cli(stack, "refunds", "list", "--json")).stdout)
        released = await cli(stack, "refunds", "release", payment_id)

        async def refunded() -> bool:
            async with adapters_of(stack).payments_db.read() as conn:
                status = (await conn.execute(select(t.refunds.c.status).where(
                    t.refunds.c.payment_id == payment_id))).scalar_one()
            return bool(status == "succeeded")

        await eventually(refunded, what="the released refund succeeded")
        again = await cli(stack, "refunds", "release", payment_id)
        await stack.simulator.settle()
        refunds_at_gateway = stack.simulator.refunds(payment_id)
        ledger = stack.simulator.ledger_entry(order_id)
        trace = await stack.system.operations.trace(order_id)

    assert [r["refund_id"] for r in listed] == [payment_id]
    assert listed[0]["amount"] == "30.00" and listed[0]["reason"] == "amount_mismatch"
    assert released.returncode == 0, released.stderr
    assert len(refunds_at_gateway) == 1
    assert (ledger.charged, ledger.refunded) == (Decimal("30.00"), Decimal("30.00"))
    assert again.returncode == 2 and "no held refund" in again.stderr
    kinds = [s.kind for s in trace.steps]
    assert kinds.index("refund.released") < kinds.index("refund.succeeded")


async def test_the_admin_endpoints_answer_behind_the_admin_token(
    make_stack: StackFactory, http: httpx.AsyncClient
):
    async with make_stack(admin_token="s3cret-admin") as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("12.00")
        await customer.checkout(order_id)
        base, auth = stack.payments_internal_url, {"authorization": "Bearer s3cret-admin"}
        refused = await http.get(f"{base}/admin/status")
        status = await http.get(f"{base}/admin/status", headers=auth)
        trace = await http.get(f"{base}/admin/trace/{order_id}", headers=auth)
        missing = await http.get(f"{base}/admin/trace/nothing-here", headers=auth)
        held = await http.get(f"{base}/admin/refunds/held", headers=auth)
        release = await http.post(f"{base}/admin/refunds/123/release", headers=auth)
        dismiss = await http.post(f"{base}/admin/refunds/123/dismiss", headers=auth,
                                  json={"reason": "settled by phone"})

    assert refused.status_code == 401
    assert status.status_code == 200 and "notifications_waiting" in status.json()
    assert trace.status_code == 200
    assert [s["kind"] for s in trace.json()["steps"]][:2] == ["order.created",
                                                             "checkout.created"]
    assert missing.status_code == 404 and "nothing-here" in missing.json()["detail"]
    assert held.status_code == 200 and held.json() == []
    assert release.status_code == 404 and "no held refund 123" in release.json()["detail"]
    assert dismiss.status_code == 404
