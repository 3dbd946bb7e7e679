"""MercadoPago webhook signatures: `x-signature: ts=<seconds>,v1=<hex>`.

v1 = HMAC-SHA256(secret, "id:<data.id>;request-id:<x-request-id>;ts:<ts>;"), where a part
absent from the request is left out of the manifest. The id comes from the query string's
`data.id`, because the body is not signed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from payrelay.domain.errors import NotificationRejected


@dataclass(frozen=True, slots=True)
class SignatureHeader:
    ts: str
    v1: str


def parse_signature_header(value: str | None) -> SignatureHeader:
    if not value:
        raise NotificationRejected("missing x-signature header")
    parts: dict[str, str] = {}
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep or not key or not val:
            raise NotificationRejected("malformed x-signature header")
        parts[key.strip()] = val.strip()
    ts, v1 = parts.get("ts"), parts.get("v1")
    if ts is None or v1 is None or not ts.isdigit():
        raise NotificationRejected("malformed x-signature header")
    if len(v1) != 64 or any(c not in "0123456789abcdefABCDEF" for c in v1):
        raise NotificationRejected("malformed x-signature header")
    return SignatureHeader(ts=ts, v1=v1.lower())


def manifest(*, data_id: str | None, request_id: str | None, ts: str) -> str:
    text = ""
    if data_id:
        text += f"id:{data_id};"
    if request_id:
        text += f"request-id:{request_id};"
    return text + f"ts:{ts};"


def sign(secret: str, *, data_id: str | None, request_id: str | None, ts: str) -> str:
    message = manifest(data_id=data_id, request_id=request_id, ts=ts).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, *, data_id: str, request_id: str, ts: int) -> str:
    """The header value MercadoPago would send; used by the simulator."""
    return f"ts={ts},v1={sign(secret, data_id=data_id, request_id=request_id, ts=str(ts))}"


def verify_signature(
    header: str | None,
    *,
    data_id: str | None,
    request_id: str | None,
    secrets: Iterable[str],
) -> None:
    """Raise NotificationRejected unless one active secret signed this notification.

    The id is tried as received and then lowercased: MercadoPago's SDKs have disagreed on
    casing of alphanumeric ids. Every comparison is constant-time.
    """
    parsed = parse_signature_header(header)
    candidates = [data_id] if data_id is None else list(dict.fromkeys([data_id, data_id.lower()]))
    matched = False
    for secret in secrets:
        for candidate in candidates:
            expected = sign(secret, data_id=candidate, request_id=request_id, ts=parsed.ts)
            # Keep looping after a match so timing does not reveal which secret matched.
            matched |= hmac.compare_digest(expected, parsed.v1)
    if not matched:
        raise NotificationRejected("invalid signature")
