"""`Authorization: Bearer <token>` checked once, for every endpoint that takes a token.

The scheme is required (compared case-insensitively, as RFC 9110 says schemes are) and the
token is compared in constant time, so a wrong guess takes as long as a near one.
"""

from __future__ import annotations

import hmac

__all__ = ["bearer_matches"]


def bearer_matches(authorization: str | None, expected: str) -> bool:
    """True when the header is `Bearer <expected>`; an empty `expected` matches nothing.

    >>> bearer_matches("bearer s3cret", "s3cret"), bearer_matches("s3cret", "s3cret")
    (True, False)
    """
    scheme, _, given = (authorization or "").strip().partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())
