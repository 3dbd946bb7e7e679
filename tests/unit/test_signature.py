"""MercadoPago webhook signatures: the manifest, and what verify_signature accepts."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from payrelay.domain.errors import NotificationRejected
from payrelay.domain.signature import (
    manifest,
    parse_signature_header,
    sign,
    signature_header,
    verify_signature,
)
from payrelay.simulator import signing as simulator_signing

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


# --- fixed vectors: payrelay's verifier and the simulator's signer against known digests --
#
# Each digest was computed outside both codebases, from MercadoPago's description of the
# signature alone (HMAC-SHA256 of "id:<data.id>;request-id:<x-request-id>;ts:<ts>;" under
# the secret, in hex), with `openssl dgst -sha256 -hmac <secret>` and again with Python's
# hmac module by hand. A mistake shared by the signer and the verifier cannot pass these.


@dataclass(frozen=True)
class Vector:
    secret: str
    data_id: str
    request_id: str
    ts: int
    manifest: str
    v1: str

    @property
    def header(self) -> str:
        return f"ts={self.ts},v1={self.v1}"


VECTORS = {
    "numeric-id-seconds": Vector(
        "mp-secret-9f2c41", "1000000001", "bb56a2f1-6aae-46ac-982e-9dcd3581d08e", 1767960000,
        "id:1000000001;request-id:bb56a2f1-6aae-46ac-982e-9dcd3581d08e;ts:1767960000;",
        "7b1404f079cccd214a4d782a688717826f6135b46e52954d0e820af5dc1b72e2",
    ),
    "alphanumeric-id-milliseconds": Vector(
        "e2f1ab77c0d94f5a8e3b6d21c9a04f18", "abc123def",
        "7f3e9c2a-1b4d-4e8f-9a6c-2d5b8e1f0a3c", 1742505638683,
        "id:abc123def;request-id:7f3e9c2a-1b4d-4e8f-9a6c-2d5b8e1f0a3c;ts:1742505638683;",
        "6128433bd7e52eb0d825cbd211d17b2717738f1b88e41639b6918c81360d5bdb",
    ),
    "short-request-id": Vector(
        "rotated-secret", "30000000017", "req-1", 1700000000,
        "id:30000000017;request-id:req-1;ts:1700000000;",
        "e8bc0a7c6da5e8aa57c26da361676c0c9cd28bb2ea721f549c65f5c08909cc13",
    ),
}
vectors = pytest.mark.parametrize("vector", list(VECTORS.values()), ids=list(VECTORS))


def verify_vector(vector: Vector, **changes: Any) -> None:
    """payrelay's verify_signature on the vector's request, with `changes` made to it."""
    request = {
        "header": vector.header, "data_id": vector.data_id,
        "request_id": vector.request_id, "secrets": (vector.secret,), **changes,
    }
    verify_signature(
        request["header"], data_id=request["data_id"], request_id=request["request_id"],
        secrets=request["secrets"],
    )


def flip_last_hex(digest: str) -> str:
    return digest[:-1] + ("0" if digest[-1] != "0" else "1")


@vectors
def test_payrelay_builds_the_vector_manifest_and_digest(vector: Vector) -> None:
    ts = str(vector.ts)
    assert manifest(data_id=vector.data_id, request_id=vector.request_id, ts=ts) == (
        vector.manifest
    )
    assert sign(vector.secret, data_id=vector.data_id, request_id=vector.request_id, ts=ts) == (
        vector.v1
    )


@vectors
def test_payrelay_verifies_the_vector_header(vector: Vector) -> None:
    verified = verify_signature(
        vector.header, data_id=vector.data_id, request_id=vector.request_id,
        secrets=("another-secret", vector.secret),
    )
    assert (verified.ts, verified.v1) == (str(vector.ts), vector.v1)


TAMPERED: dict[str, Callable[[Vector], dict[str, Any]]] = {
    "digest": lambda v: {"header": f"ts={v.ts},v1={flip_last_hex(v.v1)}"},
    "ts": lambda v: {"header": f"ts={v.ts + 1},v1={v.v1}"},
    "data-id": lambda v: {"data_id": f"{v.data_id}0"},
    "request-id": lambda v: {"request_id": f"{v.request_id}0"},
    "secret": lambda v: {"secrets": (f"{v.secret}0",)},
}


@vectors
@pytest.mark.parametrize("tamper", list(TAMPERED.values()), ids=list(TAMPERED))
def test_payrelay_rejects_a_tampered_vector(
    vector: Vector, tamper: Callable[[Vector], dict[str, Any]]
) -> None:
    with pytest.raises(NotificationRejected, match="invalid signature") as info:
        verify_vector(vector, **tamper(vector))
    assert info.value.status_code == 401


@vectors
def test_the_simulator_signs_the_vector(vector: Vector) -> None:
    request = {"data_id": vector.data_id, "request_id": vector.request_id, "ts": vector.ts}
    assert simulator_signing.signed_text(**request) == vector.manifest
    assert simulator_signing.v1_signature(vector.secret, **request) == vector.v1
    assert simulator_signing.x_signature(vector.secret, **request) == vector.header
