"""MercadoPago webhook signatures: the manifest, and what verify_signature accepts."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from payrelay.domain.errors import NotificationRejected
from payrelay.domain.signature import (
    manifest,
    parse_signature_header,
    sign,
    signature_header,
    verify_signature,
)

SECRET = "current-secret"
DATA_ID = "123456789"
REQUEST_ID = "bb56a2f1-6aae-46ac-982e-9dcd3581d08e"
TS = 1_767_960_000


def good_header(
    secret: str = SECRET, *, data_id: str = DATA_ID, request_id: str = REQUEST_ID
) -> str:
    return signature_header(secret, data_id=data_id, request_id=request_id, ts=TS)


def verify(
    header: str | None,
    *,
    data_id: str | None = DATA_ID,
    request_id: str | None = REQUEST_ID,
    secrets: tuple[str, ...] = (SECRET,),
) -> None:
    verify_signature(header, data_id=data_id, request_id=request_id, secrets=secrets)


# --- manifest and sign ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_id", "request_id", "expected"),
    [
        ("123", "req-1", "id:123;request-id:req-1;ts:1700;"),
        (None, "req-1", "request-id:req-1;ts:1700;"),
        ("123", None, "id:123;ts:1700;"),
        (None, None, "ts:1700;"),
        ("", "", "ts:1700;"),
    ],
    ids=["all", "no-id", "no-request-id", "ts-only", "empty-as-absent"],
)
def test_manifest_format(data_id: str | None, request_id: str | None, expected: str) -> None:
    assert manifest(data_id=data_id, request_id=request_id, ts="1700") == expected


def test_sign_is_hmac_sha256_of_the_manifest_in_hex() -> None:
    expected = hmac.new(b"s3cret", b"id:123;request-id:req-1;ts:1700;", hashlib.sha256).hexdigest()
    assert sign("s3cret", data_id="123", request_id="req-1", ts="1700") == expected


def test_signature_header_is_ts_then_v1() -> None:
    v1 = sign(SECRET, data_id=DATA_ID, request_id=REQUEST_ID, ts=str(TS))
    assert good_header() == f"ts={TS},v1={v1}"
    assert parse_signature_header(good_header()).ts == str(TS)
    assert parse_signature_header(good_header()).v1 == v1


# --- verify: accepted -----------------------------------------------------------------


def test_accepts_a_good_signature() -> None:
    verify(good_header())


def test_accepts_spaces_and_uppercase_hex() -> None:
    v1 = sign(SECRET, data_id=DATA_ID, request_id=REQUEST_ID, ts=str(TS))
    verify(f"ts={TS}, v1={v1.upper()}")


def test_accepts_when_any_active_secret_matches() -> None:
    secrets = ("next-secret", SECRET, "another")
    verify(good_header(SECRET), secrets=secrets)
    verify(good_header("next-secret"), secrets=secrets)


def test_accepts_an_uppercase_id_that_was_signed_lowercase() -> None:
    verify(good_header(data_id="abc123def"), data_id="ABC123DEF")


def test_accepts_a_signature_without_request_id_when_none_was_sent() -> None:
    header = f"ts={TS},v1={sign(SECRET, data_id=DATA_ID, request_id=None, ts=str(TS))}"
    verify(header, request_id=None)


# --- verify: rejected -----------------------------------------------------------------


def test_rejects_a_wrong_secret() -> None:
    with pytest.raises(NotificationRejected, match="invalid signature") as info:
        verify(good_header("attacker-secret"))
    assert info.value.status_code == 401


def test_rejects_a_secret_that_was_rotated_out() -> None:
    with pytest.raises(NotificationRejected, match="invalid signature"):
        verify(good_header("old-secret"), secrets=("new-secret",))


def test_rejects_when_no_secret_is_configured() -> None:
    with pytest.raises(NotificationRejected):
        verify(good_header(), secrets=())


def test_rejects_a_tampered_id() -> None:
    with pytest.raises(NotificationRejected, match="invalid signature"):
        verify(good_header(), data_id="987654321")


def test_rejects_a_tampered_request_id() -> None:
    with pytest.raises(NotificationRejected, match="invalid signature"):
        verify(good_header(), request_id="ffffffff-6aae-46ac-982e-9dcd3581d08e")


def test_rejects_a_dropped_request_id() -> None:
    with pytest.raises(NotificationRejected, match="invalid signature"):
        verify(good_header(), request_id=None)


def test_rejects_a_tampered_timestamp() -> None:
    v1 = parse_signature_header(good_header()).v1
    with pytest.raises(NotificationRejected, match="invalid signature"):
        verify(f"ts={TS + 1},v1={v1}")


def test_lowercasing_goes_one_way_only() -> None:
    """An id signed in uppercase and received in lowercase is another id."""
    with pytest.raises(NotificationRejected, match="invalid signature"):
        verify(good_header(data_id="ABC123DEF"), data_id="abc123def")


@pytest.mark.parametrize("header", [None, ""], ids=["absent", "empty"])
def test_rejects_a_missing_header(header: str | None) -> None:
    with pytest.raises(NotificationRejected, match="missing"):
        verify(header)


V1 = sign(SECRET, data_id=DATA_ID, request_id=REQUEST_ID, ts=str(TS))
MALFORMED = {
    "no-v1": f"ts={TS}",
    "no-ts": f"v1={V1}",
    "non-hex-v1": f"ts={TS},v1={'z' * 64}",
    "short-v1": f"ts={TS},v1={V1[:-1]}",
    "long-v1": f"ts={TS},v1={V1}0",
    "non-numeric-ts": f"ts=yesterday,v1={V1}",
    "empty-ts": f"ts=,v1={V1}",
    "no-equals": f"ts{TS},v1{V1}",
    "semicolons": f"ts={TS};v1={V1}",
    "garbage": "garbage",
    "only-commas": ",,,",
    "trailing-comma": f"ts={TS},v1={V1},",
}


@pytest.mark.parametrize("header", list(MALFORMED.values()), ids=list(MALFORMED))
def test_rejects_a_malformed_header(header: str) -> None:
    with pytest.raises(NotificationRejected, match="malformed"):
        verify(header)


# --- the manifest is unambiguous ------------------------------------------------------


def test_a_signature_over_id_and_request_id_does_not_verify_them_joined() -> None:
    """Signed over (P, R), the id `P;request-id:R` sent alone would rebuild the same text."""
    joined = f"{DATA_ID};request-id:{REQUEST_ID}"
    with pytest.raises(NotificationRejected) as info:
        verify(good_header(), data_id=joined, request_id=None)
    assert info.value.status_code == 400


@pytest.mark.parametrize("part", ["1;2", "1:2", "../x", "a b", "\x00", "\ud800", "é", "x" * 201])
def test_a_manifest_refuses_parts_it_cannot_hold(part: str) -> None:
    for data_id, request_id in ((part, REQUEST_ID), (DATA_ID, part)):
        with pytest.raises(NotificationRejected) as info:
            manifest(data_id=data_id, request_id=request_id, ts="1")
        assert info.value.status_code == 400


def test_rejects_a_repeated_key() -> None:
    with pytest.raises(NotificationRejected, match="malformed"):
        verify(f"ts={TS},ts={TS},v1={V1}")


def test_rejects_non_ascii_digits_in_ts() -> None:
    with pytest.raises(NotificationRejected, match="malformed"):
        verify(f"ts=\u0661\u0662,v1={V1}")


@pytest.mark.parametrize(("ts", "seconds"), [("1767960000", 1767960000.0),
                                             ("1767960000123", 1767960000.123)])
def test_signed_at_reads_seconds_and_milliseconds(ts: str, seconds: float) -> None:
    assert parse_signature_header(f"ts={ts},v1={V1}").signed_at == pytest.approx(seconds)
