"""The tracing port's no-op default and the OpenTelemetry adapter's trace ids and parents."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from payrelay.adapters.tracing import exporting_tracing, tracing_for
from payrelay.adapters.tracing.otel import OtelTracing, root_context
from payrelay.config import Settings
from payrelay.entrypoints.exits import one_line_reason
from payrelay.ports import NO_TRACING, SpanName
from payrelay.services.spans import SpanStart, batch_spans

CID = "mercadopago:1000000001"


@pytest.fixture
def traced() -> Iterator[tuple[OtelTracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield OtelTracing(provider), exporter
    provider.shutdown()


def finished(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def test_a_payments_trace_id_is_the_sha256_of_its_correlation_id() -> None:
    digest = hashlib.sha256(CID.encode()).digest()
    assert root_context(CID).trace_id == int.from_bytes(digest[:16], "big")
    assert root_context(CID).span_id == int.from_bytes(digest[16:24], "big")
    assert root_context(CID).is_remote and root_context(CID).trace_flags.sampled
    assert root_context("mercadopago:1000000002").trace_id != root_context(CID).trace_id


def test_spans_of_one_payment_in_two_places_share_the_trace(
    traced: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = traced
    with tracing.span(SpanName.WEBHOOK, correlation_id=CID):
        pass
    with tracing.span(SpanName.PROCESSING, correlation_id=CID, attributes={"x": 1}):
        pass
    webhook, processing = finished(exporter, "webhook"), finished(exporter, "processing")
    assert webhook.context.trace_id == processing.context.trace_id == root_context(CID).trace_id
    assert webhook.parent is not None and webhook.parent.span_id == root_context(CID).span_id
    assert processing.attributes == {"x": 1, "payrelay.correlation_id": CID}


def test_carried_headers_make_the_consume_span_a_child_of_the_publish_span(
    traced: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = traced
    with tracing.span(SpanName.PUBLISH, correlation_id=CID) as publish:
        headers = dict(publish.headers)
    with tracing.span(SpanName.CONSUME, correlation_id=CID, headers=headers):
        pass
    sent, consumed = finished(exporter, "publish"), finished(exporter, "consume")
    assert headers == {"traceparent": (
        f"00-{sent.context.trace_id:032x}-{sent.context.span_id:016x}-01")}
    assert consumed.parent is not None and consumed.parent.span_id == sent.context.span_id


def test_a_traceparent_of_another_trace_is_a_link_and_the_payment_keeps_its_trace(
    traced: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = traced
    foreign = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with tracing.span(SpanName.CONSUME, correlation_id=CID, headers={"traceparent": foreign}):
        pass
    span = finished(exporter, "consume")
    assert span.context.trace_id == root_context(CID).trace_id
    assert [f"{link.context.span_id:016x}" for link in span.links] == ["b7ad6b7169203331"]


def test_a_failure_is_recorded_by_its_type_never_its_message(
    traced: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = traced
    with pytest.raises(RuntimeError), tracing.span(SpanName.REPLY, correlation_id=CID):
        raise RuntimeError("postgresql://app:s3cret@db/pay refused")
    span = finished(exporter, "reply")
    assert not span.status.is_ok and span.status.description == "RuntimeError"
    assert span.attributes is not None and span.attributes["error.type"] == "RuntimeError"
    assert "s3cret" not in span.to_json() and not span.events


def test_batch_spans_open_siblings_and_mark_them_all_failed_with_the_batch(
    traced: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = traced
    starts = [SpanStart(f"mercadopago:{n}") for n in (1, 2, 3)]
    with pytest.raises(ValueError), batch_spans(tracing, SpanName.PUBLISH, starts) as spans:
        assert len(spans) == 3
        raise ValueError("broker")
    done = exporter.get_finished_spans()
    assert len({s.context.trace_id for s in done}) == 3
    assert all(s.parent is not None and s.parent.is_remote for s in done)  # none nested
    assert all(not s.status.is_ok for s in done)


def test_no_tracing_hands_out_one_inert_span_and_reads_no_batch() -> None:
    def unread() -> Iterator[SpanStart]:
        raise AssertionError("read with tracing off")
        yield  # a generator

    assert NO_TRACING.enabled is False
    with NO_TRACING.span(SpanName.WEBHOOK, correlation_id=CID) as span:
        assert span.headers == {}
    assert NO_TRACING.span(SpanName.CONSUME, correlation_id=CID) is span
    with batch_spans(NO_TRACING, SpanName.PUBLISH, unread()) as spans:
        assert spans == []


def test_tracing_is_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().otel is False
    assert tracing_for(Settings()) is NO_TRACING
    monkeypatch.setenv("PAYRELAY_OTEL", "true")
    monkeypatch.setenv("PAYRELAY_OTEL_EXPORTER", "console")
    assert isinstance(tracing_for(Settings()), OtelTracing)
    with pytest.raises(ValueError, match="PAYRELAY_OTEL_EXPORTER"):
        exporting_tracing("zipkin")


def test_tracing_asked_for_without_the_extra_is_one_clear_line() -> None:
    """In a fresh interpreter where the SDK cannot be imported (the extra not installed)."""
    script = (
        "import sys; sys.modules['opentelemetry.sdk'] = None\n"
        "from payrelay.adapters.tracing import exporting_tracing\n"
        "try:\n    exporting_tracing('otlp')\n"
        "except ValueError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)
    line = done.stdout.strip()
    assert line.startswith("PAYRELAY_OTEL=true needs the otel extra: pip install "
                           "'payrelay[otel]' (opentelemetry.sdk")
    assert one_line_reason(ValueError(line)) == line


def test_settings_asking_for_tracing_without_the_extra_fail_before_anything_opens() -> None:
    script = (
        "import sys; sys.modules['opentelemetry.sdk'] = None\n"
        "from payrelay.config import Settings\n"
        "from payrelay.entrypoints.exits import exit_code_for, one_line_reason\n"
        "try:\n    Settings(otel=True)\n"
        "except ValueError as exc:\n    print(int(exit_code_for(exc)), one_line_reason(exc))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == (
        "2 PAYRELAY_OTEL: Value error, needs the otel extra: pip install 'payrelay[otel]': "
        "fix it in the environment or ./payrelay.toml")
