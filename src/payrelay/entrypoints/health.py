"""`/healthz` (the process answers), `/readyz` (what it depends on answers) and `/metrics`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from payrelay.domain.errors import PayrelayError
from payrelay.ports.metrics import Metrics

ReadinessCheck = Callable[[], Awaitable[None]]
"""Returns if a dependency answers; raises a PayrelayError saying why not otherwise.

The read models' and the transport's `check` methods are such checks."""


def health_router(checks: Mapping[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await check()
                results[name] = "ok"
            except PayrelayError as exc:  # the reason, never a URL or a credential
                results[name] = f"unavailable: {type(exc).__name__}: {exc}"
        ready = all(v == "ok" for v in results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": results},
            status_code=200 if ready else 503,
        )

    return router


def metrics_router(metrics: Metrics) -> APIRouter:
    """`GET /metrics`: this process's series, in Prometheus's text format."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def scrape() -> Response:
        page = await metrics.scrape()
        return Response(page.body, media_type=page.content_type)

    return router
