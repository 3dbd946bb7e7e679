"""FastAPI's built-in OpenTelemetry, switched off for payrelay's apps (issue 10).

With no provider configured, FastAPI still asks OpenTelemetry for the global tracer,
meter and logger providers on every request, to learn that there are none, and each
lookup reads `os.environ` (`OTEL_PYTHON_TRACER_PROVIDER`...): 7-12 % of the payments API's
CPU in the issue's profile. payrelay ships no OpenTelemetry SDK, so nothing is lost;
with these options FastAPI decides from this mapping alone and reads nothing per request.
"""

from __future__ import annotations

from fastapi.telemetry import TelemetryConfig

__all__ = ["NO_TELEMETRY"]

NO_TELEMETRY: TelemetryConfig = {
    "tracing": False, "metrics": False, "logs": False, "operation_spans": False,
    "auto_configure": False,
}
