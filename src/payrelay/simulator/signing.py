"""How MercadoPago signs a webhook: the simulator's own signer, not payrelay's.

MercadoPago's notification documentation describes the `x-signature` header as
`ts=<timestamp>,v1=<signature>`, where the signature is the HMAC-SHA256, keyed with the
application's secret signature, of the text

    id:<data.id>;request-id:<x-request-id>;ts:<ts>;

written in hexadecimal. data.id is the one in the notification URL's query string (the
body is not signed) and x-request-id is the header sent beside it.

Written here from that description, not imported from payrelay's verifier: a simulator
that signed with the code under test would agree with any mistake in it.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["signed_text", "v1_signature", "x_signature"]


def signed_text(*, data_id: str, request_id: str, ts: int) -> str:
    """What MercadoPago signs for one delivery: id, request id and ts, each ended by `;`."""
    return f"id:{data_id};request-id:{request_id};ts:{ts};"


def v1_signature(secret: str, *, data_id: str, request_id: str, ts: int) -> str:
    """The `v1` part: HMAC-SHA256 of `signed_text` under `secret`, in lowercase hex."""
    text = signed_text(data_id=data_id, request_id=request_id, ts=ts)
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def x_signature(secret: str, *, data_id: str, request_id: str, ts: int) -> str:
    """The `x-signature` header MercadoPago sends: `ts=<ts>,v1=<hex>`."""
    v1 = v1_signature(secret, data_id=data_id, request_id=request_id, ts=ts)
    return f"ts={ts},v1={v1}"
