"""Logs and metrics of a running payrelay: `/metrics` moves with the payments, the business
events are JSON lines with their level and ids, and no secret reaches a log line."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from payrelay.bootstrap import WORKER_ROLES, Role
from payrelay.chaos.processes import free_port
from payrelay.entrypoints.embedded import EmbeddedStack
from payrelay.entrypoints.logs import LogFormat, configure_logging
from payrelay.simulator.faults import SimulatorFaults
from tests.integration.conftest import Rabbitmqctl
from tests.support import (
    RABBITMQ_URL,
    Customer,
    StackFactory,
    delete_rabbitmq_topology,
    eventually,
    fresh_postgres_databases,
    require_server,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(http: httpx.AsyncClient, url: str) -> Samples:
    response = await http.get(f"{url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def bad_signature(http: httpx.AsyncClient, stack: EmbeddedStack) -> None:
    response = await http.post(
        f"{stack.payments_url}/webhooks/mercadopago?data.id=123&type=payment",
        headers={"x-signature": "ts=1700000000,v1=" + "0" * 64, "x-request-id": "r-bad"},
        json={"type": "payment", "data": {"id": "123"}},
    )
    assert response.status_code == 401


async def pay_twice(stack: EmbeddedStack, http: httpx.AsyncClient, total: str) -> tuple[str, ...]:
    """An order paid, then paid again: the second payment is rejected and refunded."""
    customer = Customer(stack, http)
    order_id = await customer.order(total)
    preference = ""

    async def checked_out() -> bool:  # the gateway's injected errors reach /checkout too
        nonlocal preference
        response = await http.post(f"{stack.orders_url}/orders/{order_id}/checkout")
        preference = response.json().get("preference_id", "")
        return response.status_code == 200

    await eventually(checked_out, timeout=30, what=f"a checkout for {order_id}")
    first = await customer.pay(preference)
    await customer.wait_until_status(order_id, "paid", timeout=30)
    second = await customer.pay(preference)

    async def refunded() -> bool:
        return stack.simulator.ledger_entry(order_id).refunded == Decimal(total)

    await eventually(refunded, timeout=30, what=f"the refund of {second}")
    return order_id, first, second


async def test_metrics_exist_and_move_with_the_payments(
    make_stack: StackFactory, http: httpx.AsyncClient
) -> None:
    async with make_stack(simulator_faults=SimulatorFaults(seed=3, api_error_rate=0.3)) as stack:
        before = await scrape(http, stack.payments_internal_url)
        assert value(before, "payrelay_outbox_pending_rows", outbox="payments") == 0
        await bad_signature(http, stack)
        await pay_twice(stack, http, "30.00")
        await pay_twice(stack, http, "31.00")

        async def settled() -> bool:  # the refunder records its answer after the gateway's
            now = await scrape(http, stack.payments_internal_url)
            done = sum(value(now, "payrelay_refunds_total", result=r)
                       - value(before, "payrelay_refunds_total", result=r)
                       for r in ("refunded", "already_covered"))
            return done == 2 and value(now, "payrelay_outbox_pending_rows", outbox="orders") == 0

        await eventually(settled, timeout=30, what="both refunds recorded, the outbox empty")
        after = await scrape(http, stack.payments_internal_url)
        orders_side = await scrape(http, stack.orders_url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    mp = "mercadopago"
    assert moved("payrelay_notifications_received_total", provider=mp, result="recorded") >= 4
    assert moved("payrelay_notifications_received_total", provider=mp, result="rejected") == 1
    assert moved("payrelay_signature_failures_total", provider=mp) == 1
    assert moved("payrelay_gateway_call_seconds_count", operation="fetch_payment") >= 4
    assert moved("payrelay_gateway_call_seconds_count", operation="refund") >= 2
    assert moved("payrelay_gateway_call_seconds_count", operation="create_checkout") >= 2
    assert sum(v for (n, _), v in after.items() if n == "payrelay_gateway_errors_total") >= 1
    assert sum(v for (n, _), v in after.items() if n == "payrelay_retries_total") >= 1
    assert moved("payrelay_publish_confirms_total", relay="payments-relay") >= 4
    assert moved("payrelay_publish_confirms_total", relay="orders-relay") >= 4
    assert moved("payrelay_consumer_messages_total", consumer="orders.payment-events",
                 outcome="applied") >= 4
    assert moved("payrelay_consumer_messages_total", consumer="payments.order-events",
                 outcome="applied") >= 4
    assert moved("payrelay_approval_to_paid_seconds_count") == 2
    assert moved("payrelay_approval_to_paid_seconds_sum") > 0
    assert moved("payrelay_refunds_total", result="requested") == 2
    assert moved("payrelay_refunds_total", result="refunded") >= 1  # or found made, on a retry
    assert value(after, "payrelay_reconciler_fixes_total", check="lost_payments_found") >= 0
    assert ("payrelay_outbox_oldest_pending_seconds", (("outbox", "payments"),)) in after
    assert value(orders_side, "payrelay_outbox_pending_rows", outbox="orders") == 0
    for labels in (labels for n, labels in after if n.startswith("payrelay_")):
        assert all(k not in ("order_id", "payment_id") for k, _ in labels)


async def test_the_outbox_lag_is_read_at_scrape_time(
    make_stack: StackFactory, http: httpx.AsyncClient
) -> None:
    async with make_stack(roles=WORKER_ROLES - {Role.PAYMENTS_RELAY}) as stack:  # no relay
        customer = Customer(stack, http)
        await customer.pay(await customer.checkout(await customer.order("12.00")))
        lag: list[float] = []

        async def waiting() -> bool:
            samples = await scrape(http, stack.payments_internal_url)
            lag[:] = [value(samples, "payrelay_outbox_pending_rows", outbox="payments"),
                      value(samples, "payrelay_outbox_oldest_pending_seconds", outbox="payments")]
            return lag[0] == 1 and lag[1] > 0.05

        await eventually(waiting, timeout=20, what="an approval waiting in the outbox")
        later = await scrape(http, stack.payments_internal_url)
        assert value(later, "payrelay_outbox_oldest_pending_seconds", outbox="payments") > lag[1]


# --- logs ----------------------------------------------------------------------------------

SECRETS = {
    "gateway_access_token": "TEST-gwtoken-7f3a9c1e5b",
    "webhook_secrets": "whsec-current-4d8e2b6a,whsec-previous-9c1f7e3d",
    "admin_token": "admintok-6b2d9f4e1a",
    "db_password": "dbpass-3e8c1a7f5d",
    "broker_password": "mqpass-5a9d3c7e1b",
}


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every log line of the test, as `payrelay serve` writes them off a TTY (JSON, INFO)."""
    out = io.StringIO()
    root = logging.getLogger()
    level = root.level
    assert configure_logging(logging.INFO, fmt=LogFormat.JSON, stream=out) is LogFormat.JSON
    yield out
    for handler in [h for h in root.handlers if h.get_name() == "payrelay"]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
async def broker_user(rabbitmqctl: Rabbitmqctl) -> Any:
    """A broker user of this test's own, whose password is one of the secrets."""
    require_server("RabbitMQ", RABBITMQ_URL)
    name = f"t-signals-{uuid.uuid4().hex[:8]}"
    await rabbitmqctl("add_user", name, SECRETS["broker_password"])
    try:
        await rabbitmqctl("set_permissions", "-p", "/", name, ".*", ".*", ".*")
        yield name
    finally:
        await rabbitmqctl("delete_user", name)


def with_password(url: str) -> str:
    # The test server trusts local connections: the password is carried, never checked.
    return make_url(url).set(password=SECRETS["db_password"]).render_as_string(
        hide_password=False)


@pytest.mark.postgres
@pytest.mark.rabbitmq
async def test_no_secret_reaches_a_log_line_and_business_events_carry_their_ids(
    make_stack: StackFactory, http: httpx.AsyncClient, log_lines: io.StringIO,
    broker_user: str,
) -> None:
    prefix = f"t-{uuid.uuid4().hex[:12]}."
    broker = f"amqp://{broker_user}:{SECRETS['broker_password']}@127.0.0.1:5672/"
    async with fresh_postgres_databases(2) as (payments_url, orders_url):
        settings = {
            "gateway_access_token": SECRETS["gateway_access_token"],
            "webhook_secrets": SECRETS["webhook_secrets"], "admin_token": SECRETS["admin_token"],
            "payments_database_url": with_password(payments_url),
            "orders_database_url": with_password(orders_url),
            "broker_url": broker, "broker_name_prefix": prefix,
        }
        try:
            async with make_stack(
                simulator_faults=SimulatorFaults(seed=5, api_error_rate=0.4), **settings
            ) as stack:
                service_token = stack.settings.service_token.get_secret_value()
                await bad_signature(http, stack)
                refused = await http.get(f"{stack.payments_internal_url}/admin/dead-letters",
                                         headers={"authorization": "Bearer wrong"})
                assert refused.status_code == 401
                order_id, first, second = await pay_twice(stack, http, "45.00")
        finally:
            await delete_rabbitmq_topology(prefix)
    text = log_lines.getvalue()
    secrets = [*SECRETS.values(), *SECRETS["webhook_secrets"].split(","), service_token]
    assert len(service_token) >= 16
    assert [s for s in secrets if s in text] == []
    lines = [json.loads(line) for line in text.splitlines()]
    assert all("level" in line and "timestamp" in line for line in lines)
    failures = [line for line in lines if line["logger"] == "payrelay.failures"]
    assert failures, "the gateway errors were not logged"
    assert all(line["level"] in ("warning", "error") for line in failures)
    check_business_events(lines, order_id, first, second)


def check_business_events(lines: list[dict[str, Any]], order_id: str, first: str,
                          second: str) -> None:
    def one(event: str, payment_id: str) -> dict[str, Any]:
        found = [line for line in lines
                 if line["event"].startswith(event) and line.get("payment_id") == payment_id]
        assert len(found) == 1, (event, payment_id, found)
        (line,) = found
        assert line["level"] == "info" and line["order_id"] == order_id
        assert line["correlation_id"] == f"mercadopago:{payment_id}"
        return line

    one("order paid", first)
    assert one("payment rejected", second)["reason"] == "already_paid"
    one("refund requested", second)
    one("refund issued", second)


# --- a worker-only process ---------------------------------------------------------------


@pytest.mark.rabbitmq
async def test_a_worker_only_process_serves_health_and_metrics_on_its_metrics_port(
    tmp_path: Path, http: httpx.AsyncClient, rabbitmq_url: str, name_prefix: str
) -> None:
    port = free_port()
    env = {key: v for key, v in os.environ.items() if not key.startswith("PAYRELAY_")}
    env |= {
        "PAYRELAY_PAYMENTS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'payments.db'}",
        "PAYRELAY_ORDERS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}",
        "PAYRELAY_BROKER_URL": rabbitmq_url, "PAYRELAY_BROKER_NAME_PREFIX": name_prefix,
        "PAYRELAY_METRICS_PORT": str(port),
    }
    payrelay = [sys.executable, "-m", "payrelay"]
    subprocess.run([*payrelay, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    log_path = tmp_path / "processor.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*payrelay, "serve", "--role", "processor"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        async def healthy() -> bool:
            assert proc.poll() is None, log_path.read_text()
            try:
                return (await http.get(f"{base}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(healthy, timeout=30, what="the worker's /healthz")
        ready = await http.get(f"{base}/readyz")
        assert ready.status_code == 200, ready.text
        assert set(ready.json()["checks"]) == {"transport", "payments database"}
        samples = await scrape(http, base)
        assert ("payrelay_outbox_pending_rows", (("outbox", "payments"),)) in samples
        assert ("payrelay_approval_to_paid_seconds_count", ()) in samples
        assert (await http.get(f"{base}/checkout")).status_code == 404  # health and metrics only
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        await delete_rabbitmq_topology(name_prefix)
    assert proc.returncode == 0, log_path.read_text()
    # Off a TTY the process logs JSON, a level on every line.
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert any(line["event"].startswith("serving roles: processor") and line["level"] == "info"
               for line in lines), lines
    assert all("level" in line for line in lines)
