"""Tracing adapters. OpenTelemetry is imported only once tracing is asked for (otel.py), so
a process with tracing off loads none of the SDK and makes no OpenTelemetry lookup."""

from __future__ import annotations

from payrelay.ports import NO_TRACING, Tracing

__all__ = ["exporting_tracing", "tracing_for"]


def tracing_for(enabled: bool, exporter: str) -> Tracing:
    """What PAYRELAY_OTEL and PAYRELAY_OTEL_EXPORTER ask for: `NO_TRACING` when off."""
    return exporting_tracing(exporter) if enabled else NO_TRACING


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
