"""Bearer-token checks for payrelay's internal endpoints, written once."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Header, HTTPException

__all__ = ["require_bearer"]

_SCHEME = "bearer "


def require_bearer(token: Callable[[], str], *, name: str) -> Callable[[str | None], None]:
    """A FastAPI dependency that answers `401` unless `Authorization: Bearer <token>`.

    The scheme is required (a bare token is refused), the comparison takes constant time,
    and an empty configured token refuses every call rather than opening the endpoint.
    `name` says in the answer which token is missing; the token itself is never shown.
    """

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        expected = token()
        given = authorization or ""
        scheme_ok = given[: len(_SCHEME)].lower() == _SCHEME
        presented = given[len(_SCHEME) :].strip() if scheme_ok else ""
        # Compare even when the scheme is wrong, so timing does not tell the two apart.
        matches = hmac.compare_digest(presented.encode(), expected.encode())
        if not (expected and scheme_ok and matches):
            raise HTTPException(401, f"{name} required", headers={"www-authenticate": "Bearer"})

    return authorized
