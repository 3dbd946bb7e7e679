"""Tracing adapters. OpenTelemetry is imported only once tracing is asked for (otel.py), so
a process with tracing off loads none of the SDK and makes no OpenTelemetry lookup."""

from __future__ import annotations

from typing import Protocol

from payrelay.ports import NO_TRACING, Tracing

__all__ = ["TracingSettings", "exporting_tracing", "tracing_for"]


class TracingSettings(Protocol):
    """The two settings tracing reads (PAYRELAY_OTEL, PAYRELAY_OTEL_EXPORTER)."""

    @property
    def otel(self) -> bool: ...
    @property
    def otel_exporter(self) -> str: ...


def tracing_for(settings: TracingSettings) -> Tracing:
    """What the settings ask for: OpenTelemetry, or `NO_TRACING` (the default)."""
    return exporting_tracing(settings.otel_exporter) if settings.otel else NO_TRACING


def exporting_tracing(exporter: str) -> Tracing:
    """OpenTelemetry tracing exporting to `exporter` ("otlp" or "console").

    Raises ValueError (a setting to fix, on one line) when the `otel` extra is missing.
    """
    try:
        from payrelay.adapters.tracing.otel import exporting_tracing as build

        return build(exporter)
    except ImportError as exc:
        raise ValueError(
            "PAYRELAY_OTEL=true needs the otel extra: pip install 'payrelay[otel]' "
            f"({exc.name or 'opentelemetry'} is missing)"
        ) from exc
