"""MercadoPago webhook signatures: `x-signature: ts=<seconds or ms>,v1=<hex>`.

v1 = HMAC-SHA256(secret, "id:<data.id>;request-id:<x-request-id>;ts:<ts>;"), where a part
absent from the request is left out of the manifest. The id comes from the query string's
`data.id`, because the body is not signed.

The manifest is unambiguous only if no part can contain the separators: a signature over
(id `P`, request id `R`) would otherwise also verify id `P;request-id:R` sent alone. So a
part must be MANIFEST_PART (letters, digits, `.`, `_`, `-`: what MercadoPago's numeric ids,
alphanumeric ids and UUID request ids use), checked before any HMAC is computed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

from payrelay.domain.errors import NotificationRejected

MAX_HEADER_CHARS = 512
MAX_PART_CHARS = 200
MANIFEST_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_TS = re.compile(r"[0-9]{1,16}")
_V1 = re.compile(r"[0-9a-fA-F]{64}")
# A ts this large is in milliseconds: MercadoPago has sent both (10 and 13 digits).
_MILLISECONDS_FROM = 10**11


@dataclass(frozen=True, slots=True)
class SignatureHeader:
    ts: str
    v1: str

    @property
    def signed_at(self) -> float:
        """The ts as Unix seconds, whichever unit it was sent in."""
        value = int(self.ts)
        return value / 1000 if value >= _MILLISECONDS_FROM else float(value)


def parse_signature_header(value: str | None) -> SignatureHeader:
    """The header's ts and v1, or NotificationRejected (401); never any other exception."""
    if not value:
        raise NotificationRejected("missing x-signature header")
    if len(value) > MAX_HEADER_CHARS:
        raise NotificationRejected("malformed x-signature header")
    parts: dict[str, str] = {}
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        key, val = key.strip(), val.strip()
        if not sep or not key or not val or key in parts:
            raise NotificationRejected("malformed x-signature header")
        parts[key] = val
    ts, v1 = parts.get("ts"), parts.get("v1")
    if ts is None or v1 is None or not _TS.fullmatch(ts) or not _V1.fullmatch(v1):
        raise NotificationRejected("malformed x-signature header")
    return SignatureHeader(ts=ts, v1=v1.lower())


def check_manifest_part(name: str, value: str | None) -> None:
    """NotificationRejected (400) unless `value` can stand in a manifest unambiguously."""
    if value and not MANIFEST_PART.fullmatch(value):
        raise NotificationRejected(f"{name} is not a MercadoPago identifier", status_code=400)


def manifest(*, data_id: str | None, request_id: str | None, ts: str) -> str:
    check_manifest_part("data.id", data_id)
    check_manifest_part("x-request-id", request_id)
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
    """The header value MercadoPago would send, for tests (the simulator has its own signer)."""
    return f"ts={ts},v1={sign(secret, data_id=data_id, request_id=request_id, ts=str(ts))}"


def verify_signature(
    header: str | None,
    *,
    data_id: str | None,
    request_id: str | None,
    secrets: Iterable[str],
) -> SignatureHeader:
    """The verified header, or NotificationRejected unless one active secret signed it.

    Ids the manifest cannot hold unambiguously are refused (400) before any HMAC. The id
    is tried as received and then lowercased: MercadoPago's SDKs have disagreed on casing
    of alphanumeric ids. Every comparison is constant-time. How old the ts may be is the
    caller's rule (`WebhookIngest`), since it needs the clock.
    """
    check_manifest_part("data.id", data_id)
    check_manifest_part("x-request-id", request_id)
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
    return parsed
