"""JSON Schemas (draft 2020-12) of the two message kinds, built from the envelope's code.

Which properties exist, and which are required, comes from what `Envelope.to_dict` writes
for the samples; every enum (types, rejection reasons, currencies, amount problems) and the
amount's pattern come from the domain. Only the prose and the per-kind nullability are
written here, one entry per wire field: a field the envelope writes (or a dataclass field)
with no entry raises `ContractError`, so nothing reaches the wire undocumented.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from payrelay.contract.samples import EnvelopeClass, Samples, samples
from payrelay.domain.currencies import ISO_4217_EXPONENTS
from payrelay.domain.events import (
    INEXACT_AMOUNT_SCHEMA_VERSION,
    SCHEMA_VERSION,
    Envelope,
    EventType,
    RejectionReason,
)
from payrelay.domain.money import AMOUNT_PATTERN, AmountProblem

__all__ = ["KINDS", "ContractError", "envelope_schemas", "schema_id"]

KINDS = {
    "payment-event": "A payment's new status, from the payments side (exchange payrelay.payments).",
    "order-outcome": "The order side's decision about a payment (exchange payrelay.orders).",
}
SCHEMA_BASE = "urn:payrelay:contract:"

# The wire fields each dataclass field becomes (to_dict); a new field needs a line here.
WIRE_FIELDS: dict[str, tuple[str, ...]] = {
    "type": ("type",), "occurred_at": ("occurred_at",), "order_id": ("order_id",),
    "payment_id": ("payment_id",), "provider": ("provider",),
    "amount": ("amount", "currency"), "payment_version": ("payment_version",),
    "correlation_id": ("correlation_id",), "reason": ("reason",),
    "causation_id": ("causation_id",), "approved_at": ("approved_at",),
    "order_version": ("order_version",), "inexact_amount": ("amount_written", "amount_problem"),
    "message_id": ("message_id",),
}
_UUID = {"type": "string", "format": "uuid"}
_TIME = {"type": "string", "format": "date-time"}
_TEXT = {"type": "string", "minLength": 1}
_POSITIVE = {"type": "integer", "minimum": 1}
_NULL = {"type": "null"}
_VERSIONS = [SCHEMA_VERSION, INEXACT_AMOUNT_SCHEMA_VERSION]


class ContractError(Exception):
    """The envelope writes (or holds) a field the contract does not describe."""


_REASONS = [r.value for r in RejectionReason]
DESCRIBED: dict[str, tuple[str, dict[str, Any], dict[str, Any] | None]] = {
    "message_id": ("UUID. Every inbox deduplicates on it; a republished message keeps "
                   "it, so a repeat is recognised.", _UUID, None),
    "schema_version": (f"{SCHEMA_VERSION}, or {INEXACT_AMOUNT_SCHEMA_VERSION} when the "
                       "amount is inexact (adds amount_written and amount_problem). Any "
                       "other value is refused as undecodable.", {"enum": _VERSIONS}, None),
    "type": ("The event type; also the AMQP routing key and `type` property.", {}, None),
    "occurred_at": ("ISO 8601 with an offset; a naive time is refused.", _TIME, None),
    "order_id": ("The order, as the gateway's external_reference.", _TEXT, None),
    "payment_id": ("The gateway's payment id.", _TEXT, None),
    "provider": ("The gateway, e.g. `mercadopago`.", _TEXT, None),
    "amount": ("Decimal text, never a JSON number; exact at the currency's minor unit "
               "(in version 2: rounded toward zero).",
               {"type": "string", "pattern": AMOUNT_PATTERN}, None),
    "currency": ("ISO 4217 code.", {"enum": sorted(ISO_4217_EXPONENTS)}, None),
    "payment_version": ("The payment's version on the payments side; orders one "
                        "payment's events: a lower one than last applied is stale.",
                        _POSITIVE, None),
    "correlation_id": ("`<provider>:<payment_id>`; an outcome keeps its event's value.",
                       _TEXT, None),
    "reason": ("On order.payment_rejected, why (RejectionReason); otherwise null.",
               _NULL, {"enum": [*_REASONS, None]}),
    "causation_id": ("On an outcome, the message_id of the payment event it answers; "
                     "null on payment events.", _NULL, _UUID),
    "approved_at": ("The gateway's date_approved (or null): the keeper rule's clock.",
                    {"anyOf": [_TIME, _NULL]}, None),
    "order_version": ("On an outcome, the order's version after the decision (later "
                      "decisions about a payment win); null on payment events.",
                      _NULL, {"anyOf": [_POSITIVE, _NULL]}),
    "amount_written": ("Version 2 only: the amount exactly as the gateway wrote it.",
                       {"type": "string", "minLength": 1}, None),
    "amount_problem": ("Version 2 only: why `amount` is not exact.",
                       {"enum": [p.value for p in AmountProblem]}, None),
}
"""Wire field -> (description, schema on payment events, on outcomes; None: as events)."""


def schema_id(kind: str) -> str:
    return f"{SCHEMA_BASE}{kind}"


def envelope_schemas(cls: EnvelopeClass = Envelope) -> dict[str, dict[str, Any]]:
    """Kind -> its JSON Schema; raises ContractError for an undescribed field."""
    _check_dataclass_fields(cls)
    return {kind: _schema(kind, found) for kind, found in samples(cls).items()}


def _check_dataclass_fields(cls: EnvelopeClass) -> None:
    unmapped = [f.name for f in dataclasses.fields(cls) if f.name not in WIRE_FIELDS]
    if unmapped:
        raise ContractError(
            f"Envelope field(s) {unmapped} have no wire form in contract/schemas.py "
            "WIRE_FIELDS: describe them, then run `payrelay contract --write docs/contract`")


def _schema(kind: str, found: Samples) -> dict[str, Any]:
    described = DESCRIBED
    always = list(found.version_1[0])
    extra = [k for k in found.version_2[0] if k not in always]
    unknown = [k for s in found.all for k in s if k not in described]
    if unknown:
        raise ContractError(
            f"Envelope.to_dict writes {sorted(set(unknown))}, which contract/schemas.py does "
            "not describe: add them there (a new field needs a new schema_version), then run "
            "`payrelay contract --write docs/contract`")
    outcome = kind == "order-outcome"
    types = [t.value for t in EventType if t.is_payment_event != outcome]
    properties: dict[str, Any] = {}
    for key in [*always, *extra]:
        text, on_event, on_outcome = described[key]
        fragment = on_outcome if outcome and on_outcome is not None else on_event
        if key == "type":
            fragment = {"enum": types}
        properties[key] = {"description": text, **fragment}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_id(kind),
        "title": kind,
        "description": KINDS[kind] + " Generated from payrelay's code: do not edit.",
        "type": "object",
        "properties": properties,
        "required": always,
        "additionalProperties": False,
        "allOf": [_version_rule(extra), *([_reason_rule()] if outcome else [])],
        "examples": found.all,
    }


def _version_rule(extra: list[str]) -> dict[str, Any]:
    """Version 2 requires its fields; version 1 must not carry them."""
    return {
        "if": {"properties": {"schema_version": {"const": INEXACT_AMOUNT_SCHEMA_VERSION}}},
        "then": {"required": extra},
        "else": {"not": {"anyOf": [{"required": [k]} for k in extra]}},
    }


def _reason_rule() -> dict[str, Any]:
    """A rejection says why; an application has no reason."""
    return {
        "if": {"properties": {"type": {"const": EventType.ORDER_PAYMENT_REJECTED.value}}},
        "then": {"properties": {"reason": {"enum": [r.value for r in RejectionReason]}}},
        "else": {"properties": {"reason": _NULL}},
    }
