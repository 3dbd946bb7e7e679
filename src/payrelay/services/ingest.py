"""Webhook ingestion: verify, record durably, answer. Nothing else happens in the request.

The gateway is not called and the order system is not touched here: the notification only
says "look at payment X". Recording it is enough to answer 200; the processor does the rest,
so a slow gateway or a broken order side can never make the gateway's webhook time out.

Two kinds arrive. A webhook (`?data.id=N&type=payment`) must carry a valid `x-signature`.
A legacy IPN (`?topic=payment&id=N`) cannot be verified at all (MercadoPago does not sign
it in a way anyone can check), so it is taken as a hint and nothing else: its id must look
like a payment id, and every IPN about one id within one window is merged into one row,
due when the window ends. docs/security.md has the threat model.

A webhook is judged in order of cost: the ids' grammar (400), the signature and its age
from the query and headers (401), and only then the unsigned body, read with size and depth
limits. Every stored field is checked against `intake`'s grammars, so nothing the database
would refuse reaches the group commit. Its identity (the dedupe key) is built from signed
parts only: an attacker holding one captured request can replay it, but every replay is
the same row, whatever its body says.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from payrelay.domain.errors import NotificationRejected, UnstorableRecord
from payrelay.domain.signature import SignatureHeader, check_manifest_part, verify_signature
from payrelay.faults import FaultPoint, Faults
from payrelay.ports import NO_TRACING, Clock, NotificationLog, NotificationRecord, SpanName, Tracing
from payrelay.ports.metrics import Metrics, NoMetrics
from payrelay.services.intake import (
    ACTION,
    IPN_TOPIC,
    PAYMENT_ID,
    RESOURCE_ID,
    TOPIC,
    optional_text,
    read_json_object,
    require,
)

PAYMENT_TOPICS = frozenset({"payment"})
MAX_BODY_BYTES = 64 * 1024
IPN_WINDOW = timedelta(seconds=5)
ORDER_HINT_PARAM = "order_id"
"""The query parameter of notification_url that names the order (services/checkout.py)."""
# MercadoPago signs every retry afresh, so a genuine delivery is never older than the clock
# difference plus its own transit; five minutes is what MercadoPago's SDKs use.
TS_TOLERANCE = timedelta(minutes=5)
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
        ts_tolerance: timedelta = TS_TOLERANCE,
        tracing: Tracing = NO_TRACING,
        metrics: Metrics | None = None,
    ) -> None:
        if ipn_window <= timedelta(0) or ts_tolerance <= timedelta(0):
            raise ValueError("the IPN window and the ts tolerance must be positive")
        self._provider = provider
        self._secrets = secrets
        self._log = log
        self._clock = clock
        self._faults = faults
        self._on_recorded = on_recorded
        self._ipn_window = ipn_window
        self._ts_tolerance = ts_tolerance
        self.max_body_bytes = max_body_bytes
        self._tracing = tracing
        self._metrics = metrics or NoMetrics()

    async def ingest(self, webhook: IncomingWebhook) -> IngestOutcome:
        """Verify and durably record one notification, or raise NotificationRejected."""
        try:
            outcome = await self._verify_and_record(webhook)
        except NotificationRejected as exc:
            self._metrics.notification_received(provider=self._provider, result="rejected")
            if exc.status_code == 401:  # the signature, or its ts, did not hold
                self._metrics.signature_failed(provider=self._provider)
            raise
        self._metrics.notification_received(provider=self._provider, result=outcome.value)
        return outcome

    async def _verify_and_record(self, webhook: IncomingWebhook) -> IngestOutcome:
        if len(webhook.body) > self.max_body_bytes:
            raise NotificationRejected("notification body too large", status_code=413)
        if is_legacy_ipn(webhook.query):
            return await self._record(self._ipn_record(webhook.query))
        return await self._record(self._webhook_record(webhook))

    def _webhook_record(self, webhook: IncomingWebhook) -> NotificationRecord:
        """The record of a signed webhook, once its signature holds."""
        query, headers = webhook.query, webhook.headers
        resource_id = query.get("data.id") or None
        request_id = headers.get("x-request-id") or None
        if resource_id is not None:
            require(RESOURCE_ID, resource_id, "data.id")
        check_manifest_part("x-request-id", request_id)
        signature = verify_signature(
            headers.get("x-signature"),
            data_id=resource_id,
            request_id=request_id,
            secrets=self._secrets(),
        )
        self._check_fresh(signature)
        # Signed and fresh: only now is the (unsigned) body worth parsing.
        body = read_json_object(webhook.body)
        topic = query.get("type") or optional_text(body, "type", TOPIC)
        if not topic:
            raise NotificationRejected("notification has no type", status_code=400)
        require(TOPIC, topic, "type")
        if topic in PAYMENT_TOPICS:
            if resource_id is None:
                raise NotificationRejected("payment notification without data.id", 400)
            require(PAYMENT_ID, resource_id, "payment id")
        _check_body_id(body, resource_id)
        return NotificationRecord(
            dedupe_key=_signed_identity(self._provider, resource_id, request_id, signature),
            provider=self._provider,
            topic=topic,
            action=optional_text(body, "action", ACTION),
            resource_id=resource_id.lower() if resource_id else None,
            request_id=request_id,
            received_at=self._clock(),
            ignored=topic not in PAYMENT_TOPICS,
            order_hint=order_hint(query),
        )

    def _check_fresh(self, signature: SignatureHeader) -> None:
        """A captured request stops working once its ts is older than the tolerance."""
        skew = abs(self._clock().timestamp() - signature.signed_at)
        if skew > self._ts_tolerance.total_seconds():
            raise NotificationRejected("signature ts is outside the accepted window")

    def _ipn_record(self, query: Mapping[str, str]) -> NotificationRecord:
        """The record of an unsigned IPN: its topic and id, checked for shape, and no more.

        Its headers (an `x-signature` MercadoPago sends but nobody can check, a request id)
        are not trusted, so not kept. Every IPN about one topic and id within one window
        shares a dedupe key and the window's end as due time, so a flood of any size makes
        one row and one gateway fetch per window. Fetching at the end rather than at the
        first IPN means the fetch starts after every IPN it stands for arrived: a status
        change announced by a later IPN of the same window is read, not merged away.
        """
        topic = require(IPN_TOPIC, query["topic"], "IPN topic")
        resource_id = require(PAYMENT_ID, query.get("id", ""), "IPN id")
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
            order_hint=order_hint(query),
        )

    async def _record(self, record: NotificationRecord) -> IngestOutcome:
        # Only a verified notification about a payment gets a span: a refused request is
        # about no payment anyone vouched for, and must not open spans in its trace.
        if not self._tracing.enabled or record.ignored or not record.resource_id:
            return await self._store(record)
        with self._tracing.span(
            SpanName.WEBHOOK, correlation_id=f"{record.provider}:{record.resource_id}",
            attributes={"payrelay.payment_id": record.resource_id, "payrelay.topic": record.topic},
        ):
            return await self._store(record)

    async def _store(self, record: NotificationRecord) -> IngestOutcome:
        try:
            is_new = await self._log.record(record)
        except UnstorableRecord as exc:
            # Validation should have caught it; the group commit kept it from its batch.
            raise NotificationRejected("notification cannot be stored", 400) from exc
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


def order_hint(query: Mapping[str, str]) -> str | None:
    """The `order_id` the checkout put in its notification_url, if it looks like one.

    Unsigned, so never trusted: a malformed one is dropped, not a reason to refuse the
    webhook, and it only joins a payment to an order in `payrelay trace` and the logs."""
    hint = query.get(ORDER_HINT_PARAM)
    return hint if hint and RESOURCE_ID.fullmatch(hint) else None


def _check_body_id(body: dict[str, object], signed_id: str | None) -> None:
    """The body's data.id, if any, must be the signed one (the body itself is unsigned)."""
    data = body.get("data")
    body_id = data.get("id") if isinstance(data, dict) else None
    if body_id is None:
        return
    if (
        signed_id is None
        or isinstance(body_id, bool)
        or not isinstance(body_id, (str, int))
        or str(body_id).lower() != signed_id.lower()
    ):
        raise NotificationRejected("body data.id differs from the signed data.id")


def _signed_identity(
    provider: str, resource_id: str | None, request_id: str | None, signature: SignatureHeader
) -> str:
    """The dedupe key, from signed parts only: data.id, and x-request-id (else ts).

    MercadoPago retries a notification with the same x-request-id and a fresh ts, so the
    request id collapses its retries into one row; without one, the ts is all that tells
    two signed deliveries apart. The unsigned body `id` and query `type` take no part:
    changing them makes no new row. Hashed, so a 200-character request id still fits.
    """
    signed = f"request-id:{request_id}" if request_id else f"ts:{signature.ts}"
    digest = hashlib.sha256(signed.encode()).hexdigest()[:40]
    return f"{provider}:webhook:{(resource_id or '').lower()}:{digest}"
