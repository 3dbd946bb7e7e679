"""Each payrelay error a route raises has one answer, the same in every app."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from payrelay.domain.errors import (
    Conflict,
    GatewayUnavailable,
    InvalidMoney,
    NotFound,
    NotificationRejected,
    SchemaBehind,
    StorageRefused,
    StorageUnavailable,
)
from payrelay.entrypoints.http_errors import install_error_handlers

CASES = [
    (InvalidMoney("bad amount"), 422, {"detail": "bad amount"}),
    (NotFound("no order o-1"), 404, {"detail": "no order o-1"}),
    (Conflict("order o-1 is paid"), 409, {"detail": "order o-1 is paid"}),
    (GatewayUnavailable("timeout"), 502, {"detail": "gateway error: timeout"}),
    (NotificationRejected("bad signature", 401), 401, {"error": "bad signature"}),
    (NotificationRejected("too large", 413), 413, {"error": "too large"}),
    (StorageUnavailable("host 10.0.0.5 down"), 503,
     {"error": "database unavailable, try again later"}),
    # Subclasses of StorageUnavailable answer as it does.
    (StorageRefused("role x refused"), 503, {"error": "database unavailable, try again later"}),
    (SchemaBehind("run migrate"), 503, {"error": "database unavailable, try again later"}),
]


def app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/")
    async def route() -> None:
        raise error

    return app


@pytest.mark.parametrize(("error", "status", "body"), CASES,
                         ids=[f"{type(e).__name__}-{s}" for e, s, _ in CASES])
async def test_a_payrelay_error_is_answered_by_its_handler(
    error: Exception, status: int, body: dict[str, str]
) -> None:
    transport = httpx.ASGITransport(app=app_raising(error))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        response = await http.get("/")
    assert (response.status_code, response.json()) == (status, body)
