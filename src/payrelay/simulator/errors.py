"""The simulator's errors, rendered in MercadoPago's error shape.

    SimulatorError              {"message", "error", "status", "cause"} with `status`
    ├── BadRequest      400     malformed body, refund refused, unknown status
    ├── Unauthorized    401     missing or wrong bearer token
    ├── NotFound        404     unknown preference, payment or order
    └── InjectedFailure 500/503 an API fault switch fired

They are deliberately not payrelay errors: the simulator stands in for a foreign service,
and payrelay's gateway adapter must translate what it answers, as it would for the real one.
"""

from __future__ import annotations

from typing import Any


class SimulatorError(Exception):
    """An answer in MercadoPago's error shape; `status` is the HTTP status code."""

    status = 500
    error = "internal_error"

    def __init__(self, message: str, *, cause_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.cause_code = cause_code
        """MercadoPago's numeric cause (1000: too many rows...), when it documents one."""

    def body(self) -> dict[str, Any]:
        cause = [] if self.cause_code is None else [
            {"code": self.cause_code, "description": self.message}
        ]
        return {"message": self.message, "error": self.error, "status": self.status,
                "cause": cause}


class BadRequest(SimulatorError):
    status = 400
    error = "bad_request"


class Unauthorized(SimulatorError):
    status = 401
    error = "unauthorized"


class NotFound(SimulatorError):
    status = 404
    error = "not_found"


class InjectedFailure(SimulatorError):
    """A fault switch made this API call fail; retrying may succeed."""

    def __init__(self, status: int) -> None:
        super().__init__("internal_error" if status == 500 else "service unavailable")
        self.status = status
        self.error = "internal_error" if status == 500 else "service_unavailable"
