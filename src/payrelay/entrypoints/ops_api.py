"""`/admin` status, trace and held refunds, behind the admin token (internal listener).

The same answers as `payrelay status`, `payrelay trace` and `payrelay refunds`, through the
same `Operations` port and the same JSON (ops_json.py). An id nothing is recorded under is
a 404 that says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field

from payrelay.entrypoints.auth import admin_access
from payrelay.entrypoints.ops_json import held_refund_json, status_json, trace_json
from payrelay.ports import Operations, UnknownRefund

__all__ = ["ops_router"]

# Order ids are UUIDs, payment ids digits, refund ids payment ids: 64 characters at most.
RecordId = Annotated[str, Path(pattern=r"^[0-9A-Za-z_.:-]{1,64}$")]


class Dismissal(BaseModel):
    reason: str = Field(min_length=1, max_length=400)


def ops_router(operations: Operations, token: Callable[[], str]) -> APIRouter:
    router = APIRouter(prefix="/admin", dependencies=[Depends(admin_access(token))])

    @router.get("/status")
    async def status() -> dict[str, Any]:
        return status_json(await operations.status())

    @router.get("/trace/{record_id}")
    async def trace(record_id: RecordId) -> dict[str, Any]:
        found = await operations.trace(record_id)
        if not found.found:
            raise HTTPException(404, f"nothing is recorded for order or payment {record_id}")
        return trace_json(found)

    @router.get("/refunds/held")
    async def held() -> list[dict[str, Any]]:
        return [held_refund_json(r) for r in await operations.held_refunds()]

    @router.post("/refunds/{refund_id}/release")
    async def release(refund_id: RecordId) -> dict[str, str]:
        try:
            await operations.release_refund(refund_id)
        except UnknownRefund as exc:
            raise HTTPException(404, str(exc)) from exc
        return {"released": refund_id}

    @router.post("/refunds/{refund_id}/dismiss")
    async def dismiss(refund_id: RecordId, body: Dismissal) -> dict[str, str]:
        try:
            await operations.dismiss_refund(refund_id, body.reason)
        except UnknownRefund as exc:
            raise HTTPException(404, str(exc)) from exc
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        return {"dismissed": refund_id}

    return router
