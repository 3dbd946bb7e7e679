"""What a notification may carry: the grammar of every stored field, and a bounded JSON reader.

Everything `WebhookIngest` stores passes through here first, so a value the database would
refuse (too long, a NUL, a lone surrogate, text that is not UTF-8) is a 400 for its own
request and never reaches a group commit, where it would fail every webhook batched with it.
The grammars are MercadoPago's: what its ids, topics and actions look like, with margin.
The column limits in `tables.notifications` are the same numbers.
"""

from __future__ import annotations

import json
import re
from typing import Any

from payrelay.domain.errors import NotificationRejected

MAX_JSON_DEPTH = 16  # MercadoPago's webhook bodies nest 2 deep
# No leading zero: "0123" and "123" are one payment to the gateway, and must be one key here.
PAYMENT_ID = re.compile(r"[1-9][0-9]{0,18}")  # at most 19 digits: a signed 64-bit integer
RESOURCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # other topics' ids; column 64
IPN_TOPIC = re.compile(r"[a-z][a-z_]{0,31}")
TOPIC = re.compile(r"[a-z][a-z0-9_-]{0,63}")  # "payment", "merchant_order", "mp-connect"
ACTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # "payment.updated", "state_FINISHED"

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def require(pattern: re.Pattern[str], value: str, what: str) -> str:
    """`value` if it matches `pattern` whole, or NotificationRejected (400) naming `what`."""
    if not pattern.fullmatch(value):
        raise NotificationRejected(f"not a well-formed {what}", status_code=400)
    return value


def read_json_object(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """The body as a JSON object, or NotificationRejected (400); never another exception.

    Nesting is measured before parsing, in one linear pass, so a 1,000-deep array costs
    microseconds and no RecursionError (a traceback in the log per request) can happen.
    """
    if not raw:
        return {}
    if not _nesting_within(raw, max_depth):
        raise NotificationRejected("body nests too deep", status_code=400)
    try:
        value = json.loads(raw.decode("utf-8"))  # strict: no UTF-16, no encoded surrogates
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers past Python's 4,300-digit limit.
        raise NotificationRejected("body is not JSON", status_code=400) from exc
    if not isinstance(value, dict):
        raise NotificationRejected("body is not a JSON object", status_code=400)
    return value


def _nesting_within(raw: bytes, max_depth: int) -> bool:
    depth = 0
    for bracket in _BRACKET.finditer(_JSON_STRING.sub(b'""', raw)):
        depth += 1 if bracket.group() in (b"[", b"{") else -1
        if depth > max_depth:
            return False
    return True


def optional_text(body: dict[str, Any], key: str, pattern: re.Pattern[str]) -> str | None:
    """The body's `key`, absent or a string of the grammar; anything else is a 400."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise NotificationRejected(f"body {key} is not text", status_code=400)
    return require(pattern, value, f"body {key}")
