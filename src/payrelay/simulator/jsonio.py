"""JSON in and out without floats: amounts stay Decimal from the wire to the wire.

The standard encoder can only write a Decimal by going through float, which would turn
10.10 into 10.1 at best and 0.30000000000000004 at worst; MercadoPago clients read the
number as written, so the simulator writes it exactly as it holds it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from payrelay.simulator.errors import BadRequest


def loads(body: bytes) -> Any:
    """Parse a request body; JSON numbers with a fraction become Decimal, never float."""
    if not body.strip():
        return {}
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise BadRequest(f"invalid JSON body: {exc}") from exc


def dumps(value: object) -> bytes:
    """Encode `value`; a Decimal is written digit for digit as a JSON number."""
    return "".join(_encode(value)).encode()


def iso(moment: datetime) -> str:
    """MercadoPago's timestamp shape, milliseconds and offset: 2026-11-23T10:00:00.123-04:00."""
    if moment.tzinfo is None:
        raise ValueError("the simulator's clock must return timezone-aware datetimes")
    return moment.isoformat(timespec="milliseconds")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _encode(value: object) -> Iterator[str]:
    if value is None or isinstance(value, bool | int | float | str):
        yield json.dumps(value, allow_nan=False)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot write {value} as a JSON number")
        yield format(value, "f")
    elif isinstance(value, Mapping):
        yield from _encode_object(value)
    elif isinstance(value, list | tuple):
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ","
            yield from _encode(item)
        yield "]"
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _encode_object(value: Mapping[Any, Any]) -> Iterator[str]:
    yield "{"
    for index, (key, item) in enumerate(value.items()):
        if not isinstance(key, str):
            raise TypeError(f"JSON object keys must be str, got {type(key).__name__}")
        if index:
            yield ","
        yield json.dumps(key)
        yield ":"
        yield from _encode(item)
    yield "}"
