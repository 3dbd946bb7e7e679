"""Request bodies checked and turned into records' parts; anything odd is a BadRequest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from payrelay.simulator.amounts import parse_amount
from payrelay.simulator.errors import BadRequest
from payrelay.simulator.records import Item, Outcome, Status

_PREFERENCE_FIELDS = ("items", "external_reference", "notification_url")


@dataclass(frozen=True, slots=True)
class PreferenceRequest:
    items: tuple[Item, ...]
    external_reference: str | None
    notification_url: str | None
    extra: dict[str, Any]


def parse_preference(body: object) -> PreferenceRequest:
    """Check a POST /checkout/preferences body; unit_price may be a number or a string."""
    raw = _object(body, "preference")
    items = raw.get("items")
    if not isinstance(items, list) or not items:
        raise BadRequest("items must be a non-empty list")
    parsed = tuple(_item(item) for item in items)
    if len({item.currency_id for item in parsed}) != 1:
        raise BadRequest("all items must share one currency_id")
    return PreferenceRequest(
        items=parsed,
        external_reference=_optional_str(raw, "external_reference"),
        notification_url=_optional_str(raw, "notification_url"),
        extra={k: v for k, v in raw.items() if k not in _PREFERENCE_FIELDS},
    )


def _item(raw_item: object) -> Item:
    raw = _object(raw_item, "item")
    title, quantity, currency = raw.get("title"), raw.get("quantity"), raw.get("currency_id")
    if not isinstance(title, str) or not title:
        raise BadRequest("item title must be a non-empty string")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise BadRequest("item quantity must be a positive integer")
    if not isinstance(currency, str):
        raise BadRequest("item currency_id must be a string")
    price = parse_amount(raw.get("unit_price"), currency, name="unit_price")
    return Item(title=title, quantity=quantity, unit_price=price, currency_id=currency)


def parse_outcome(body: object) -> Outcome:
    raw = _object(body, "pay request")
    try:
        return Outcome(raw.get("outcome", Outcome.APPROVE))
    except ValueError as exc:
        choices = ", ".join(o.value for o in Outcome)
        raise BadRequest(f"outcome must be one of {choices}") from exc


def parse_status(value: object) -> Status:
    try:
        return Status(str(value))
    except ValueError as exc:
        raise BadRequest(f"unknown payment status {value!r}") from exc


def field_of(body: object, name: str) -> object:
    """One field of an optional JSON object body (None when absent)."""
    return _object(body, "body").get(name)


def _object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadRequest(f"{what} must be a JSON object")
    return value


def _optional_str(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value
