"""Webhook ingestion: verify, record durably, answer. Nothing else happens in the request.

The gateway is not called and the order system is not touched here: the notification only
says "look at payment X". Recording it is enough to answer 200; the processor does the rest,
so a slow gateway or a broken order side can never make the gateway's webhook time out.

Two kinds arrive. A webhook (`?data.id=N&type=payment`) must carry a valid `x-signature`.
A legacy IPN (`?topic=payment&id=N`) cannot be verified at all (MercadoPago does not sign
it in a way anyone can check), so it is taken as a hint and nothing else: its id must look
like a payment id, and every IPN about one id within one window is merged into one row,
due when the window ends. docs/security.md has the threat model.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from payrelay.domain.errors import NotificationRejected
from payrelay.domain.signature import verify_signature
from payrelay.faults import FaultPoint, Faults
from payrelay.ports import Clock, NotificationLog, NotificationRecord

PAYMENT_TOPICS = frozenset({"payment"})
MAX_BODY_BYTES = 64 * 1024
IPN_WINDOW = timedelta(seconds=5)
# No leading zero: "0123" and "123" are one payment to the gateway, and must be one key here.
_IPN_ID = re.compile(r"[1-9][0-9]{0,18}")  # at most 19 digits: fits a signed 64-bit integer
_IPN_TOPIC = re.compile(r"[a-z][a-z_]{0,31}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class IngestOutcome(StrEnum):
    RECORDED = "recorded"
    """New: the processor will fetch the payment."""
    DUPLICATE = "duplicate"
    """Already recorded; nothing more to do."""
    IGNORED = "ignored"
    """A topic payrelay does not use; recorded for the record, not processed."""


@dataclass(frozen=True, slots=True)
class IncomingWebhook:
    """The parts of an HTTP request the signature and the record need."""

    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes


class WebhookIngest:
    def __init__(
        self,
        *,
        provider: str,
        secrets: Callable[[], Sequence[str]],
        log: NotificationLog,
        clock: Clock,
        faults: Faults,
        on_recorded: Callable[[], None] = lambda: None,
        max_body_bytes: int = MAX_BODY_BYTES,
        ipn_window: timedelta = IPN_WINDOW,
    ) -> None:
        if ipn_window <= timedelta(0):
            raise ValueError("the IPN window must be positive")
        self._provider = provider
        self._secrets = secrets
        self._log = log
        self._clock = clock
        self._faults = faults
        self._on_recorded = on_recorded
        self._ipn_window = ipn_window
        self.max_body_bytes = max_body_bytes

    async def ingest(self, webhook: IncomingWebhook) -> IngestOutcome:
        """Verify and durably record one notification, or raise NotificationRejected."""
        if len(webhook.body) > self.max_body_bytes:
            raise NotificationRejected("notification body too large", status_code=413)
        if is_legacy_ipn(webhook.query):
            return await self._record(self._ipn_record(webhook.query))
        return await self._record(self._webhook_record(webhook))

    def _webhook_record(self, webhook: IncomingWebhook) -> NotificationRecord:
        """The record of a signed webhook, once its signature holds."""
        topic, resource_id, body = _identify(webhook)
        request_id = webhook.headers.get("x-request-id")
        verify_signature(
            webhook.headers.get("x-signature"),
            data_id=resource_id,
            request_id=request_id,
            secrets=self._secrets(),
        )
        return NotificationRecord(
            dedupe_key=_dedupe_key(self._provider, topic, resource_id, request_id, body, webhook),
            provider=self._provider,
            topic=topic,
            action=_str_or_none(body.get("action")),
            resource_id=resource_id.lower() if resource_id else None,
            request_id=request_id,
            received_at=self._clock(),
            ignored=topic not in PAYMENT_TOPICS,
        )

    def _ipn_record(self, query: Mapping[str, str]) -> NotificationRecord:
        """The record of an unsigned IPN: its topic and id, checked for shape, and no more.

        Its headers (an `x-signature` MercadoPago sends but nobody can check, a request id)
        are not trusted, so not kept. Every IPN about one topic and id within one window
        shares a dedupe key and the window's end as due time, so a flood of any size makes
        one row and one gateway fetch per window. Fetching at the end rather than at the
        first IPN means the fetch starts after every IPN it stands for arrived: a status
        change announced by a later IPN of the same window is read, not merged away.
        """
        topic, resource_id = _ipn_identity(query)
        now = self._clock()
        window = (now - _EPOCH) // self._ipn_window
        return NotificationRecord(
            dedupe_key=f"{self._provider}:{topic}:{resource_id}:ipn:{window}",
            provider=self._provider,
            topic=topic,
            action=None,
            resource_id=resource_id,
            request_id=None,
            received_at=now,
            ignored=topic not in PAYMENT_TOPICS,
            due_at=_EPOCH + (window + 1) * self._ipn_window,
        )

    async def _record(self, record: NotificationRecord) -> IngestOutcome:
        is_new = await self._log.record(record)
        self._faults.check(FaultPoint.WEBHOOK_AFTER_RECORD)
        if record.ignored:
            return IngestOutcome.IGNORED
        if is_new:
            self._on_recorded()
            return IngestOutcome.RECORDED
        return IngestOutcome.DUPLICATE


def is_legacy_ipn(query: Mapping[str, str]) -> bool:
    """`?topic=payment&id=123`. A request naming `data.id` or `type` is a webhook, whatever
    else it carries, so it can never skip its signature check by adding `topic`."""
    return "topic" in query and "data.id" not in query and "type" not in query


def _ipn_identity(query: Mapping[str, str]) -> tuple[str, str]:
    """Topic and id of an IPN, or NotificationRejected (400) unless both look like MP's."""
    topic, resource_id = query["topic"], query.get("id", "")
    if not _IPN_TOPIC.fullmatch(topic):
        raise NotificationRejected("IPN topic is not a MercadoPago topic", status_code=400)
    if not _IPN_ID.fullmatch(resource_id):
        raise NotificationRejected("IPN id is not a MercadoPago id", status_code=400)
    return topic, resource_id


def _identify(webhook: IncomingWebhook) -> tuple[str, str | None, dict[str, Any]]:
    """Topic and resource id, from the query string (signed), checked against the body."""
    query = webhook.query
    body = _json_object(webhook.body)
    topic = query.get("type") or _str_or_none(body.get("type"))
    if not topic:
        raise NotificationRejected("notification has no type", status_code=400)
    signed_id = query.get("data.id") or None
    data = body.get("data")
    body_id = data.get("id") if isinstance(data, dict) else None
    if body_id is not None and (
        signed_id is None or str(body_id).lower() != signed_id.lower()
    ):
        raise NotificationRejected("body data.id differs from the signed data.id")
    if topic in PAYMENT_TOPICS and not signed_id:
        raise NotificationRejected("payment notification without data.id", status_code=400)
    return topic, signed_id, body


def _json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotificationRejected("body is not JSON", status_code=400) from exc
    if not isinstance(value, dict):
        raise NotificationRejected("body is not a JSON object", status_code=400)
    return value


def _dedupe_key(
    provider: str,
    topic: str,
    resource_id: str | None,
    request_id: str | None,
    body: dict[str, Any],
    webhook: IncomingWebhook,
) -> str:
    """The gateway's own identity for this notification, so its retries collapse to one row.

    Without one (no body id, no request id: the signature then covers only the data.id and
    ts) every delivery is kept: processing is idempotent, so a surplus row costs one gateway
    fetch, while a wrong merge could lose a later status change.
    """
    identity = _str_or_none(body.get("id")) or request_id
    if identity is None:
        identity = hashlib.sha256(
            webhook.body + repr(sorted(webhook.headers.items())).encode()
        ).hexdigest()
    return f"{provider}:{topic}:{(resource_id or '').lower()}:{identity}"


def _str_or_none(value: object) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)
