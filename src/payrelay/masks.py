"""Credentials hidden from what payrelay prints: settings, URLs in errors and logs."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

__all__ = ["mask_url"]

# Query parameters that carry credentials in the URLs payrelay is given (libpq's
# `password`/`sslpassword`, an API's `access_token`, a signed URL's `signature`...).
_SECRET_QUERY_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "signature", "cred")


def mask_url(url: str) -> str:
    """`url` with its credentials replaced by `****`, whatever its scheme.

    >>> mask_url("postgresql://app:pw@db:5432/pay?sslpassword=x&sslmode=require")
    'postgresql://app:****@db:5432/pay?sslpassword=****&sslmode=require'

    A user without a password may itself be the credential (`https://TOKEN@host`), so
    it is hidden too. The last `@` ends the user part: a password holding an unescaped
    `@` or `/` is still hidden whole, at the price of hiding a host now and then.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    user_info, at, host_part = rest.rpartition("@")
    if at:
        user, colon, _ = user_info.partition(":")
        rest = (f"{user}:****" if colon else "****") + "@" + host_part
    base, question, query = rest.partition("?")
    if question:
        query, hash_mark, fragment = query.partition("#")
        pairs = [
            (key, "****" if any(w in key.lower() for w in _SECRET_QUERY_WORDS) else value)
            for key, value in parse_qsl(query, keep_blank_values=True)
        ]
        rest = f"{base}?{urlencode(pairs, safe='*')}{hash_mark}{fragment}"
    return f"{scheme}://{rest}"
