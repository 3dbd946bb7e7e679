"""OpenTelemetry behind the Tracing port (the `otel` extra, PAYRELAY_OTEL=true).

One trace per payment, across processes and time, with no context stored: every span's
parent is a remote root whose trace id is the first 16 bytes of the SHA-256 of the
payment's correlation id (`provider:payment_id`), and whose span id is the next 8 (that
root is never exported: a backend shows it as the trace's missing root). A consumed
message's `traceparent` makes its span the publish span's child instead, when it names the
same trace; one naming another trace (a publisher of its own) becomes a link, so a
payment's trace stays one.

A span is never made current: spans of one batch are siblings, and no asyncio task's
context is touched. A failure is recorded by its type alone, never its message or stack,
which could hold a URL (secrets never leave in telemetry).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from payrelay.ports import SpanName
from payrelay.ports.tracing import Attributes

__all__ = ["EXPORTERS", "OtelTracing", "exporting_tracing", "root_context"]

EXPORTERS = ("otlp", "console")
_PROPAGATOR = TraceContextTextMapPropagator()
_KINDS = {
    SpanName.WEBHOOK: SpanKind.SERVER,
    SpanName.PROCESSING: SpanKind.INTERNAL,
    SpanName.PUBLISH: SpanKind.PRODUCER,
    SpanName.CONSUME: SpanKind.CONSUMER,
    SpanName.REPLY: SpanKind.CONSUMER,
}


def root_context(correlation_id: str) -> SpanContext:
    """The remote root of a payment's trace, derived from its correlation id alone."""
    digest = hashlib.sha256(correlation_id.encode()).digest()
    return SpanContext(
        trace_id=int.from_bytes(digest[:16], "big") or 1,  # all-zero ids are invalid
        span_id=int.from_bytes(digest[16:24], "big") or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )


class _OtelSpan:
    def __init__(self, span: trace.Span) -> None:
        self._span = span

    @property
    def headers(self) -> Mapping[str, str]:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(self._span))
        return carrier


class OtelTracing:
    """The Tracing port on an OpenTelemetry SDK tracer provider."""

    enabled = True

    def __init__(self, provider: TracerProvider) -> None:
        self._tracer = provider.get_tracer("payrelay")

    @contextmanager
    def span(
        self,
        name: SpanName,
        *,
        correlation_id: str,
        attributes: Attributes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[_OtelSpan]:
        parent, links = _parent(correlation_id, headers)
        span = self._tracer.start_span(
            name.value, context=parent, kind=_KINDS[name], links=links,
            attributes={**(attributes or {}), "payrelay.correlation_id": correlation_id},
            record_exception=False, set_status_on_exception=False,
        )
        try:
            yield _OtelSpan(span)
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
            raise
        finally:
            span.end()


def _parent(
    correlation_id: str, headers: Mapping[str, str] | None
) -> tuple[Context, list[Link]]:
    """The payment's root, or the carried publish span when it is of the same trace."""
    root = root_context(correlation_id)
    links: list[Link] = []
    if headers and "traceparent" in headers:
        carried = _PROPAGATOR.extract(headers)
        context = trace.get_current_span(carried).get_span_context()
        if context.is_valid and context.trace_id == root.trace_id:
            return carried, links
        if context.is_valid:
            links.append(Link(context))
    return trace.set_span_in_context(NonRecordingSpan(root)), links


def exporting_tracing(exporter: str) -> OtelTracing:
    """Spans batched to OTLP over HTTP (OTEL_EXPORTER_OTLP_ENDPOINT and the other standard
    variables apply), or printed to stdout as they end ("console", for trying it out).

    The provider flushes and shuts down at interpreter exit (the SDK's atexit hook).
    """
    processor: SpanProcessor
    if exporter == "console":
        processor = SimpleSpanProcessor(ConsoleSpanExporter())
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter())
    else:
        raise ValueError(f"PAYRELAY_OTEL_EXPORTER must be one of {', '.join(EXPORTERS)}")
    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES apply
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "payrelay"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(processor)
    return OtelTracing(provider)
