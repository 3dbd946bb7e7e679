"""Fuzzing the webhook's parsers: whatever arrives, only NotificationRejected (4xx) escapes.

The signature header parser, the bounded JSON reader and the whole of `WebhookIngest`
(over a notification log that only remembers keys) get arbitrary text, bytes and request
shapes, signed with the real secret when the manifest can hold the ids, so the body's
parsing behind the signature is reached too.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payrelay.domain.errors import NotificationRejected
from payrelay.domain.signature import (
    MANIFEST_PART,
    parse_signature_header,
    signature_header,
    verify_signature,
)
from payrelay.faults import Faults
from payrelay.ports import NotificationRecord
from payrelay.services.ingest import IncomingWebhook, WebhookIngest
from payrelay.services.intake import read_json_object

SECRET = "fuzz-secret"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class KeyLog:
    """A NotificationLog that keeps dedupe keys, checking what the database would refuse."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    async def record(self, notification: NotificationRecord) -> bool:
        for value, width in ((notification.dedupe_key, 200), (notification.topic, 64),
                             (notification.action, 64), (notification.resource_id, 64),
                             (notification.request_id, 200)):
            assert value is None or (len(value) <= width and value.isascii()
                                     and "\x00" not in value), value
        new = notification.dedupe_key not in self.keys
        self.keys.add(notification.dedupe_key)
        return new


def rejected_as_4xx(call: object) -> None:
    try:
        call()  # type: ignore[operator]
    except NotificationRejected as exc:
        assert 400 <= exc.status_code < 500


@FUZZ
@given(st.one_of(st.none(), st.text(), st.from_regex(r"ts=[0-9]{1,20},v1=[0-9a-f]{60,70}")))
def test_the_signature_header_parser_never_crashes(header: str | None) -> None:
    rejected_as_4xx(lambda: parse_signature_header(header))
    rejected_as_4xx(lambda: verify_signature(header, data_id="1", request_id=None,
                                             secrets=[SECRET]))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@FUZZ
@given(st.one_of(st.binary(max_size=2000),
                 json_values.map(lambda v: json.dumps(v).encode()),
                 st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n)))
def test_the_json_reader_never_crashes(raw: bytes) -> None:
    rejected_as_4xx(lambda: read_json_object(raw))


ids = st.one_of(st.text(max_size=80), st.from_regex(r"[1-9][0-9]{0,20}", fullmatch=True),
                st.sampled_from(["1000000999", "../../x", "1;request-id:2", "\ud800", ""]))
topics = st.one_of(st.text(max_size=70), st.sampled_from(["payment", "merchant_order"]))
bodies = st.one_of(
    st.binary(max_size=500),
    st.fixed_dictionaries(
        {"type": topics, "action": st.one_of(st.text(max_size=70), json_values),
         "data": st.one_of(json_values, st.fixed_dictionaries({"id": ids | json_values}))},
        optional={"id": json_values},
    ).map(lambda v: json.dumps(v).encode()),
)


@FUZZ
@given(data_id=ids, request_id=st.one_of(st.none(), ids), topic=topics, body=bodies,
       ipn=st.booleans(), skew=st.integers(-1000, 1000), sign=st.booleans())
def test_ingest_never_crashes_and_stores_only_what_fits(
    data_id: str, request_id: str | None, topic: str, body: bytes, ipn: bool, skew: int,
    sign: bool,
) -> None:
    ts = int(time.time()) + skew
    headers = {"x-request-id": request_id} if request_id is not None else {}
    signable = all(not part or MANIFEST_PART.fullmatch(part) for part in (data_id, request_id))
    if sign and signable:
        headers["x-signature"] = signature_header(
            SECRET, data_id=data_id, request_id=request_id or "", ts=ts)
    query = {"topic": topic, "id": data_id} if ipn else {"data.id": data_id, "type": topic}
    ingest = WebhookIngest(provider="mercadopago", secrets=lambda: [SECRET], log=KeyLog(),
                           clock=lambda: datetime.now(UTC), faults=Faults())
    webhook = IncomingWebhook(query=query, headers=headers, body=body)
    rejected_as_4xx(lambda: asyncio.run(ingest.ingest(webhook)))
