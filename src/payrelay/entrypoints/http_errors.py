"""How payrelay's HTTP apps answer a failure that no route answers itself: written once, shared.

A database that cannot be reached is `503 {"error": ...}` on every route of every app, so a
client (or a load balancer) knows to try again, and no traceback leaves the process. The
reason is logged in one line; the client is told only what it can act on.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from payrelay.domain.errors import StorageUnavailable

__all__ = ["error_response", "install_error_handlers"]

log = logging.getLogger(__name__)


def error_response(status: int, message: str) -> JSONResponse:
    """payrelay's error body: `{"error": message}`."""
    return JSONResponse({"error": message}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StorageUnavailable, _storage_unavailable)


async def _storage_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return error_response(503, "database unavailable, try again later")
