"""Token buckets and the rejection log, on a clock the test moves by hand."""

from __future__ import annotations

import logging

import pytest

from payrelay.config import Settings
from payrelay.entrypoints.http_server import ServerLimits
from payrelay.entrypoints.rate_limit import KeyedBuckets, TokenBucket
from payrelay.entrypoints.rejections import Rejections


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate():
    bucket = TokenBucket.full(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5) and not bucket.take(0.5)  # 0.5 s at 2/s is one token
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # capped


def test_spending_past_empty_is_a_debt_paid_back_before_the_next_pass():
    clock = FakeClock()
    buckets = KeyedBuckets(rate=1.0, burst=2, clock=clock)
    for _ in range(4):  # four concurrent rejections, all checked before any was charged
        buckets.spend("a")
    assert not buckets.has_token("a")
    clock.now += 2.5
    assert not buckets.has_token("a")  # -2 + 2.5 = 0.5: still short of one token
    clock.now += 0.5
    assert buckets.has_token("a")
    assert buckets.has_token("b")  # another key is untouched


def test_the_number_of_keys_is_bounded_and_the_least_recent_is_forgotten():
    buckets = KeyedBuckets(rate=0.001, burst=1, clock=FakeClock(), max_keys=3)
    for key in ("a", "b", "c", "a", "d"):
        buckets.spend(key)
    assert len(buckets) == 3
    assert buckets.has_token("b")  # forgotten: a full bucket again
    assert not buckets.has_token("a") and not buckets.has_token("d")


def test_every_rejection_is_counted_but_lines_are_spent_from_a_budget(
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.WARNING, logger="payrelay.intake")
    clock = FakeClock()
    rejections = Rejections(log_per_second=1.0, log_burst=2, clock=clock)
    for _ in range(5):
        rejections.record("invalid signature", address="10.0.0.9", status=401)
    clock.now += 1.0
    rejections.record("header timeout", address="10.0.0.8")
    assert rejections.counts == {"invalid signature": 5, "header timeout": 1}
    assert rejections.total == 6
    assert [r.getMessage() for r in caplog.records] == [
        "rejected 10.0.0.9: invalid signature, HTTP 401",
        "rejected 10.0.0.9: invalid signature, HTTP 401",
        "rejected 10.0.0.8: header timeout, connection closed (3 more rejections not logged)",
    ]


def test_a_reason_is_one_bounded_printable_line():
    rejections = Rejections()
    rejections.record("bad\nline\x00" + "x" * 500, address="10.0.0.9", status=400)
    (reason,) = rejections.counts
    assert "\n" not in reason and "\x00" not in reason and len(reason) <= 120


def test_server_limit_defaults_are_the_settings_defaults():
    assert ServerLimits.from_settings(Settings()) == ServerLimits()


@pytest.mark.parametrize(
    "bad",
    [
        {"http_header_timeout_seconds": 0},
        {"http_body_timeout_seconds": -1},
        {"http_max_concurrent_requests": 0},
        {"http_max_header_bytes": 10},
        {"webhook_rejections_per_second": 0},
        {"http_forwarded_allow_ips": "10.0.0.1,not-an-ip"},
    ],
)
def test_limit_settings_are_validated(bad: dict[str, object]):
    with pytest.raises(ValueError):
        Settings(**bad)  # type: ignore[arg-type]


def test_proxies_are_addresses_networks_or_any():
    assert Settings(http_forwarded_allow_ips="10.0.0.1, 10.1.0.0/16,*")
