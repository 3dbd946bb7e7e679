"""Consumers' spans over the memory adapters: one per message, ended by the batch's commit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from payrelay.adapters.tracing.otel import OtelTracing, root_context
from payrelay.domain.errors import InjectedFault
from payrelay.faults import FaultPoint
from payrelay.ports import Delivery, SpanName
from payrelay.services.consume import PaymentEventConsumer
from tests.contract.builders import envelope
from tests.services.conftest import World


@pytest.fixture
def traced() -> Iterator[tuple[OtelTracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield OtelTracing(provider), exporter
    provider.shutdown()


async def test_a_batch_that_fails_to_commit_fails_each_messages_span(
    world: World, traced: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = traced
    consumer = PaymentEventConsumer(uow=world.orders, clock=world.clock, faults=world.faults,
                                    tracing=tracing)
    await world.add_order("order-1")
    await world.add_order("order-2")
    first, second = envelope("1", order_id="order-1"), envelope("2", order_id="order-2")
    with tracing.span(SpanName.PUBLISH, correlation_id=first.correlation_id) as publish:
        carried = dict(publish.headers)
    batch = [
        Delivery(str(first.message_id), first.routing_key, first.to_json(), headers=carried),
        Delivery(str(second.message_id), second.routing_key, second.to_json()),
    ]
    world.faults.arm(FaultPoint.ORDER_CONSUMER_BEFORE_COMMIT)

    with pytest.raises(InjectedFault):
        await consumer.handle(batch)

    spans = {s.attributes["payrelay.payment_id"]: s for s in exporter.get_finished_spans()
             if s.name == "consume" and s.attributes is not None}
    assert set(spans) == {"1", "2"}
    assert all(not s.status.is_ok and s.status.description == "InjectedFault"
               for s in spans.values())
    (sent,) = [s for s in exporter.get_finished_spans() if s.name == "publish"]
    assert spans["1"].parent is not None and spans["1"].parent.span_id == sent.context.span_id
    root = root_context(second.correlation_id)  # carried nothing: under its payment's root
    assert spans["2"].parent is not None and spans["2"].parent.span_id == root.span_id
    assert world.o.orders["order-1"].order.version == 1  # nothing committed

    await consumer.handle(batch)  # the retry commits: its spans are fine
    ok = [s for s in exporter.get_finished_spans() if s.name == "consume" and s.status.is_ok]
    assert len(ok) == 2
