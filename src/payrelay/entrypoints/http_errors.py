"""How payrelay's HTTP apps answer payrelay's errors: one handler per error, shared by all apps.

Routes raise; they never catch a payrelay error to turn it into a response. Every app
installs the same table, so the same error is the same answer on every route:

    InvalidMoney          422 {"detail": ...}
    NotFound              404 {"detail": ...}
    Conflict              409 {"detail": ...}
    GatewayError          502 {"detail": "gateway error: ..."}
    NotificationRejected  its status_code {"error": reason}
    StorageUnavailable    503 {"error": ...}

A database that cannot be reached is 503 so that a client (a load balancer, or the gateway
redelivering an unrecorded webhook) knows to try again, and no traceback leaves the
process. The reason is logged in one line; the client is told only what it can act on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from payrelay.domain.errors import (
    Conflict,
    GatewayError,
    InvalidMoney,
    NotFound,
    NotificationRejected,
    StorageUnavailable,
)

__all__ = ["HANDLERS", "detail_response", "error_response", "install_error_handlers"]

log = logging.getLogger(__name__)

Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def error_response(status: int, message: str) -> JSONResponse:
    """payrelay's error body: `{"error": message}`."""
    return JSONResponse({"error": message}, status_code=status)


def detail_response(status: int, message: str) -> JSONResponse:
    """A refused request's body, as FastAPI writes its own: `{"detail": message}`."""
    return JSONResponse({"detail": message}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Register the one answer to each payrelay error on `app`."""
    for error, handler in HANDLERS.items():
        app.add_exception_handler(error, handler)


def _detail(status: int, prefix: str = "") -> Handler:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return detail_response(status, f"{prefix}{exc}")

    return handle


async def _notification_rejected(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotificationRejected)
    return error_response(exc.status_code, exc.reason)


async def _storage_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return error_response(503, "database unavailable, try again later")


HANDLERS: dict[type[Exception], Handler] = {
    InvalidMoney: _detail(422),
    NotFound: _detail(404),
    Conflict: _detail(409),
    GatewayError: _detail(502, "gateway error: "),
    NotificationRejected: _notification_rejected,
    StorageUnavailable: _storage_unavailable,
}
"""Each payrelay error an HTTP route may raise, and how it is answered."""
