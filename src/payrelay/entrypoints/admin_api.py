"""Admin endpoints for dead letters, behind the admin token (entrypoints/auth.py's
`admin_access`: the bearer token, or the admin page's sign-in cookie). Mounted on the payments
API's internal listener."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from payrelay.entrypoints.auth import admin_access
from payrelay.ports import DeadLetter, DeadLetterBox

MAX_LIST = 1000
"""The most dead letters one listing (or one replay by ids) names."""

ROW_ID_MAX = 2**31 - 1
"""Dead letters and notifications are numbered by INTEGER columns (int4 on PostgreSQL)."""


def _row_id_in_range(dead_letter_id: str) -> str:
    kind, _, key = dead_letter_id.partition("-")
    if kind != "refund" and int(key) > ROW_ID_MAX:
        raise ValueError(f"no dead letter is numbered past {ROW_ID_MAX}")
    return dead_letter_id


# What a dead letter's id can be: a message's row in either database or a dead
# notification (numbered rows), or a held refund (by payment id). Anything else is a 422
# before storage sees it (a number past the column's range too); a well-formed unknown id
# is a 404.
DeadLetterId = Annotated[
    str,
    StringConstraints(
        pattern=r"^((payments|orders|notification)-[0-9]{1,10}|refund-[0-9A-Za-z_.:-]{1,64})$"
    ),
    AfterValidator(_row_id_in_range),
]
DeadLetterIdPath = Annotated[DeadLetterId, Path()]


class ReplayRequest(BaseModel):
    ids: list[DeadLetterId] | None = Field(default=None, max_length=MAX_LIST)
    all: bool = False


def dead_letter_json(letter: DeadLetter, *, with_body: bool = False) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": letter.id,
        "message_id": letter.message_id,
        "exchange": letter.exchange,
        "routing_key": letter.routing_key,
        "queue": letter.queue,
        "reason": letter.reason,
        "error": letter.error,
        "attempts": letter.attempts,
        "dead_at": letter.dead_at.isoformat(),
        "order_id": letter.order_id,
        "payment_id": letter.payment_id,
    }
    if with_body:
        try:
            shown["body"] = letter.body.decode()
        except UnicodeDecodeError:
            shown["body_base64"] = base64.b64encode(letter.body).decode()
    return shown


def admin_router(box: DeadLetterBox, token: Callable[[], str]) -> APIRouter:
    """`/admin/dead-letters`: an unknown id is NotFound (404), a replay or purge the letter
    does not allow a Conflict (409), answered by the app's shared handlers (http_errors)."""
    # An empty configured token disables the endpoints rather than opening them.
    router = APIRouter(prefix="/admin", dependencies=[Depends(admin_access(token))])

    @router.get("/dead-letters")
    async def list_dead_letters(
        limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
    ) -> list[dict[str, Any]]:
        return [dead_letter_json(d) for d in await box.recent(limit=limit)]

    @router.get("/dead-letters/{dead_letter_id}")
    async def show_dead_letter(dead_letter_id: DeadLetterIdPath) -> dict[str, Any]:
        letter = await box.get(dead_letter_id)
        if letter is None:
            raise HTTPException(404, f"no dead letter {dead_letter_id}")
        return dead_letter_json(letter, with_body=True)

    @router.post("/dead-letters/replay")
    async def replay(body: ReplayRequest) -> dict[str, list[str]]:
        if not body.all and not body.ids:
            raise HTTPException(422, "name ids, or all: true")
        return {"replayed": await box.replay(None if body.all else body.ids)}

    @router.delete("/dead-letters/{dead_letter_id}")
    async def purge(dead_letter_id: DeadLetterIdPath) -> dict[str, list[str]]:
        # A held refund is money owed: purging one is a Conflict (409), never done.
        purged = await box.purge([dead_letter_id])
        if not purged:
            raise HTTPException(404, f"no dead letter {dead_letter_id}")
        return {"purged": purged}

    return router
