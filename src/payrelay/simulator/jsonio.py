"""JSON in and out without floats: amounts stay Decimal from the wire to the wire.

simplejson with `use_decimal=True` reads every fractional JSON number as a Decimal and
writes a Decimal digit for digit (`1500.0`, `25.1`), as MercadoPago writes its amounts;
the standard library could only write one by going through float.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import simplejson

from payrelay.simulator.errors import BadRequest


def loads(body: bytes) -> Any:
    """Parse a request body; JSON numbers with a fraction become Decimal, never float."""
    if not body.strip():
        return {}
    try:
        # NaN and Infinity are refused (simplejson's default): they are no JSON numbers.
        return simplejson.loads(body, use_decimal=True)
    except ValueError as exc:
        raise BadRequest(f"invalid JSON body: {exc}") from exc


def dumps(value: object) -> bytes:
    """Encode `value`, compact; a Decimal is written digit for digit as a JSON number."""
    return simplejson.dumps(value, use_decimal=True, separators=(",", ":")).encode()


def iso(moment: datetime) -> str:
    """MercadoPago's timestamp shape, milliseconds and offset: 2026-11-23T10:00:00.123-04:00."""
    if moment.tzinfo is None:
        raise ValueError("the simulator's clock must return timezone-aware datetimes")
    return moment.isoformat(timespec="milliseconds")
