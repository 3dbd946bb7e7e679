"""OpenTelemetry tracing (PAYRELAY_OTEL): one trace per payment, webhook to reply.

Spans go to the SDK's in-memory exporter. The embedded stack runs a payment end to end on
SQLite with the local transport, and on PostgreSQL with the real RabbitMQ server, so the
`traceparent` a relay puts on a message crosses a real broker before its consumer reads it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import aio_pika
import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from payrelay.adapters import memory
from payrelay.adapters.tracing.otel import OtelTracing, root_context
from payrelay.domain.retry import Backoff, RetryPolicy, RetrySchedule
from payrelay.faults import Faults
from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION, PAYMENTS_EXCHANGE
from payrelay.services.relay import OutboxRelay
from tests.contract.builders import AT, PROVIDER, envelope
from tests.integration.conftest import RabbitMQFactory
from tests.support import Customer, StackFactory, eventually

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("webhook", "processing", "publish", "consume", "reply")


@pytest.fixture
def exported() -> Iterator[tuple[OtelTracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield OtelTracing(provider), exporter
    provider.shutdown()


def of_payment(spans: Sequence[ReadableSpan], payment_id: str) -> list[ReadableSpan]:
    cid = f"{PROVIDER}:{payment_id}"
    return [s for s in spans if (s.attributes or {}).get("payrelay.correlation_id") == cid]


def one(spans: list[ReadableSpan], name: str, **attributes: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name
             and all((s.attributes or {}).get(k) == v for k, v in attributes.items())]
    assert len(found) == 1, (name, attributes, [(s.name, s.attributes) for s in spans])
    return found[0]


@pytest.mark.parametrize("backend", ["sqlite", "postgres+rabbitmq"], indirect=True)
async def test_a_payment_is_one_trace_from_webhook_to_reply(
    make_stack: StackFactory, http: httpx.AsyncClient,
    exported: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = exported
    async with make_stack(tracing=tracing) as stack:
        customer = Customer(stack, http)
        order_id = await customer.order("13.00")
        payment_id = await customer.pay(await customer.checkout(order_id))

        async def answered() -> bool:
            return any(s.name == "reply"
                       for s in of_payment(exporter.get_finished_spans(), payment_id))

        await eventually(answered, what="the reply span")
    spans = of_payment(exporter.get_finished_spans(), payment_id)

    assert {s.name for s in spans} >= set(STEPS)
    trace_id = root_context(f"{PROVIDER}:{payment_id}").trace_id
    assert {s.context.trace_id for s in spans} == {trace_id}
    event = one(spans, "publish", **{
        "messaging.rabbitmq.destination.routing_key": "payment.approved"})
    consume = one(spans, "consume", **{"payrelay.event_type": "payment.approved"})
    assert consume.parent is not None and consume.parent.span_id == event.context.span_id
    answer = one(spans, "publish", **{
        "messaging.rabbitmq.destination.routing_key": "order.payment_applied"})
    reply = one(spans, "reply")
    assert reply.parent is not None and reply.parent.span_id == answer.context.span_id
    assert reply.attributes is not None and reply.attributes["payrelay.order_id"] == order_id
    # The steps that start a process's share of the work hang off the payment's root.
    for name in ("webhook", "processing"):
        span = next(s for s in spans if s.name == name)
        assert span.parent is not None and span.parent.span_id == root_context(
            f"{PROVIDER}:{payment_id}").span_id
    assert all(s.status.is_ok for s in spans)


@pytest.mark.rabbitmq
async def test_the_relay_puts_its_publish_span_on_the_rabbitmq_message(
    rabbitmq: RabbitMQFactory, rabbitmq_url: str, name_prefix: str,
    exported: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = exported
    transport = await rabbitmq()  # nobody consumes: the message waits in the work queue
    uow = memory.MemoryPaymentsUnitOfWork(memory.payments_database(), lambda: AT)
    sent = envelope("1000000042")
    async with uow.begin() as tx:
        await tx.outbox.add(sent, exchange=PAYMENTS_EXCHANGE)
    relay = OutboxRelay(
        store=uow.relay_store, transport=transport, clock=lambda: AT, faults=Faults(),
        retry=RetryPolicy(backoff=Backoff(base=1.0, cap=2.0), schedule=RetrySchedule((1.0,)),
                          permanent_tries=3, not_visible_grace=timedelta(minutes=1)),
        rng=random.Random(1), tracing=tracing,
    )

    assert (await relay.run_once()).confirmed == 1

    (publish,) = exporter.get_finished_spans()
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{name_prefix}{ORDER_SIDE_SUBSCRIPTION.queue}")
        got = await queue.get(timeout=5)
        await got.ack()
    finally:
        await connection.close()
    assert got.message_id == str(sent.message_id)
    assert got.headers["traceparent"] == (
        f"00-{publish.context.trace_id:032x}-{publish.context.span_id:016x}-01")
    assert publish.context.trace_id == root_context(sent.correlation_id).trace_id



def test_with_tracing_off_no_sdk_loads_and_payrelay_calls_no_opentelemetry() -> None:
    """The default: a whole payment, in a fresh interpreter, watched by a profiler."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYRELAY_", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.tracing_off_probe"], cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    probe = json.loads(done.stdout.splitlines()[-1])
    assert probe["otel"] is False
    assert probe["imported_after"] == probe["imported_before"]  # nothing more for payrelay
    assert not [m for m in probe["imported_after"]
                if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter"))]
    assert probe["payrelay_tracing"] == []
    # FastAPI itself imports opentelemetry-api and reads one context variable per request
    # even with its telemetry off (entrypoints/telemetry.py); payrelay calls nothing of it.
    assert all("/fastapi/telemetry/" in caller for caller in probe["callers"]), probe
