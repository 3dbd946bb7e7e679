"""`Authorization: Bearer <token>`, checked once for every endpoint that takes a token, and
the admin page's sign-in cookie, checked by the same rule.

The scheme is required (compared case-insensitively, as RFC 9110 says schemes are) and the
token is compared in constant time, so a wrong guess takes as long as a near one. An empty
configured token refuses every call rather than opening the endpoint, and says which
setting enables it.

A browser signs in once (`/admin/sign-in` posts the token) and holds a cookie, HttpOnly and
SameSite=Strict, whose value is derived from the token (an HMAC, never the token itself), so
changing the token signs every browser out. A request that changes something and is
authorised by the cookie must also carry the page's CSRF header: another site can make a
browser send a form, never a custom header.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Header, HTTPException, Request

__all__ = [
    "ADMIN_TOKEN_SETTING",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "SIGN_IN_PATH",
    "admin_access",
    "bearer_matches",
    "csrf_value",
    "require_bearer",
    "session_value",
    "token_matches",
]

ADMIN_TOKEN_SETTING = "PAYRELAY_ADMIN_TOKEN"  # noqa: S105 (a setting's name, not a token)
"""The setting that enables `/admin` (empty: every call is refused)."""
SESSION_COOKIE = "payrelay_admin"
CSRF_HEADER = "x-payrelay-csrf"
SIGN_IN_PATH = "/admin/sign-in"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def bearer_matches(authorization: str | None, expected: str) -> bool:
    """True when the header is `Bearer <expected>`; an empty `expected` matches nothing.

    >>> bearer_matches("bearer s3cret", "s3cret"), bearer_matches("s3cret", "s3cret")
    (True, False)
    """
    scheme, _, given = (authorization or "").strip().partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def _derived(token: str, purpose: bytes) -> str:
    return hmac.new(token.encode(), purpose, hashlib.sha256).hexdigest()


def session_value(token: str) -> str:
    """The sign-in cookie's value for `token`: derived, so the cookie never holds the token."""
    return _derived(token, b"payrelay admin session v1")


def csrf_value(token: str) -> str:
    """The header value the admin page sends with every POST (read from the page itself)."""
    return _derived(token, b"payrelay admin csrf v1")


def _matches(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode(), expected.encode())


def token_matches(given: str | None, expected: str) -> bool:
    """`given` is the configured token, compared in constant time; nothing matches an empty one."""
    return bool(expected) and _matches(given, expected)


def _refused(name: str, expected: str, setting: str | None) -> HTTPException:
    if expected:
        reason = f"{name} required (Authorization: Bearer <token>)"
    else:
        enable = f"set {setting} to enable it" if setting else f"no {name} is configured"
        reason = f"disabled: {enable}"
    return HTTPException(401, reason, headers={"www-authenticate": "Bearer"})


def require_bearer(
    token: Callable[[], str], *, name: str, setting: str | None = None
) -> Callable[[str | None], None]:
    """A FastAPI dependency that answers `401` unless `Authorization: Bearer <token>`.

    `name` says in the answer which token is missing, `setting` which setting enables the
    endpoint when none is configured; the token itself is never shown.
    """

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        expected = token()
        if not bearer_matches(authorization, expected):
            raise _refused(name, expected, setting)

    return authorized


def admin_access(token: Callable[[], str]) -> Callable[[Request], None]:
    """The dependency of every `/admin` route but the sign-in form: the bearer token, or the
    sign-in cookie (plus the CSRF header on a POST or DELETE). A browser asking for a page
    without either is sent to sign in; anything else is `401`."""

    def authorized(request: Request) -> None:
        expected = token()
        if bearer_matches(request.headers.get("authorization"), expected):
            return
        cookie = request.cookies.get(SESSION_COOKIE)
        if expected and cookie is not None and _matches(cookie, session_value(expected)):
            if request.method in _SAFE_METHODS:
                return
            if _matches(request.headers.get(CSRF_HEADER), csrf_value(expected)):
                return
            raise HTTPException(403, f"cross-site request refused (no valid {CSRF_HEADER})")
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            raise HTTPException(303, "sign in first", headers={"location": SIGN_IN_PATH})
        raise _refused("admin token", expected, ADMIN_TOKEN_SETTING)

    return authorized
