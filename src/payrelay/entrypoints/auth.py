"""Bearer-token checks for payrelay's internal endpoints, written once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Header, HTTPException

from payrelay.entrypoints.bearer import bearer_matches

__all__ = ["require_bearer"]


def require_bearer(token: Callable[[], str], *, name: str) -> Callable[[str | None], None]:
    """A FastAPI dependency that answers `401` unless `Authorization: Bearer <token>`.

    The scheme is required (a bare token is refused), the comparison takes constant time,
    and an empty configured token refuses every call rather than opening the endpoint.
    `name` says in the answer which token is missing; the token itself is never shown.
    """

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        if not bearer_matches(authorization, token()):
            raise HTTPException(401, f"{name} required (Authorization: Bearer <token>)",
                                headers={"www-authenticate": "Bearer"})

    return authorized
