"""`Authorization: Bearer <token>`, checked once for every endpoint that takes a token.

The scheme is required (compared case-insensitively, as RFC 9110 says schemes are) and the
token is compared in constant time, so a wrong guess takes as long as a near one. An empty
configured token refuses every call rather than opening the endpoint.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Header, HTTPException

__all__ = ["bearer_matches", "require_bearer"]


def bearer_matches(authorization: str | None, expected: str) -> bool:
    """True when the header is `Bearer <expected>`; an empty `expected` matches nothing.

    >>> bearer_matches("bearer s3cret", "s3cret"), bearer_matches("s3cret", "s3cret")
    (True, False)
    """
    scheme, _, given = (authorization or "").strip().partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def require_bearer(token: Callable[[], str], *, name: str) -> Callable[[str | None], None]:
    """A FastAPI dependency that answers `401` unless `Authorization: Bearer <token>`.

    `name` says in the answer which token is missing; the token itself is never shown.
    """

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        if not bearer_matches(authorization, token()):
            raise HTTPException(401, f"{name} required (Authorization: Bearer <token>)",
                                headers={"www-authenticate": "Bearer"})

    return authorized
