"""The one retry rule: outages are waited out, a 404 gets a grace period, the rest is bounded."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payrelay.domain.errors import (
    GatewayRejected,
    GatewayUnavailable,
    InjectedFault,
    InvalidEnvelope,
    MalformedResource,
    StorageUnavailable,
    TransportUnavailable,
)
from payrelay.domain.retry import (
    Backoff,
    FailureKind,
    RetryPolicy,
    RetrySchedule,
    decide_retry,
    failure_kind,
)
from payrelay.failure_log import FailureLog

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(
    backoff=Backoff(base=1.0, cap=60.0),
    schedule=RetrySchedule((1.0, 5.0, 30.0)),
    permanent_tries=3,
    not_visible_grace=timedelta(minutes=10),
)


def decide(kind: FailureKind, *, tries: int = 0, failures: int = 0, age: float = 0.0):
    return decide_retry(kind, tries=tries, failures=failures, age=timedelta(seconds=age),
                        now=NOW, policy=POLICY, rng=random.Random(1))


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (StorageUnavailable("db down"), FailureKind.UNAVAILABLE),
        (TransportUnavailable("broker down"), FailureKind.UNAVAILABLE),
        (GatewayUnavailable("HTTP 503"), FailureKind.UNAVAILABLE),
        (GatewayRejected("HTTP 404", 404), FailureKind.NOT_VISIBLE),
        (GatewayRejected("HTTP 401", 401), FailureKind.PERMANENT),
        (GatewayRejected("HTTP 403", 403), FailureKind.PERMANENT),
        (MalformedResource("no status"), FailureKind.PERMANENT),
        (InvalidEnvelope("not JSON"), FailureKind.PERMANENT),
        (InjectedFault("x"), FailureKind.FAILED),
        (RuntimeError("a bug"), FailureKind.FAILED),
    ],
)
def test_every_error_has_a_kind(error: Exception, kind: FailureKind) -> None:
    assert failure_kind(error) is kind


@given(tries=st.integers(0, 10_000), failures=st.integers(0, 10_000),
       age=st.floats(0, 10**8))
def test_an_outage_is_retried_for_as_long_as_it_lasts_and_spends_nothing(
    tries: int, failures: int, age: float
) -> None:
    decision = decide(FailureKind.UNAVAILABLE, tries=tries, failures=failures, age=age)
    assert decision.retry_at is not None and not decision.spends_attempt
    assert NOW < decision.retry_at <= NOW + timedelta(seconds=60)


def test_an_outage_backs_off_as_it_goes_on() -> None:
    first = decide(FailureKind.UNAVAILABLE, tries=0).retry_at
    later = decide(FailureKind.UNAVAILABLE, tries=8).retry_at
    assert first is not None and later is not None
    assert first - NOW <= timedelta(seconds=1) < later - NOW


def test_a_payment_unknown_to_the_gateway_is_retried_through_the_grace_period_then_dead() -> None:
    within = decide(FailureKind.NOT_VISIBLE, tries=20, age=599)
    assert within.retries and not within.spends_attempt
    after = decide(FailureKind.NOT_VISIBLE, tries=20, age=600)
    assert after.retry_at is None
    assert after.gave_up == "not_visible: unknown to the gateway after 600s"


def test_a_permanent_failure_gets_a_bounded_number_of_tries() -> None:
    assert decide(FailureKind.PERMANENT, failures=0).spends_attempt
    assert decide(FailureKind.PERMANENT, failures=1).retries
    last = decide(FailureKind.PERMANENT, failures=2)
    assert last.retry_at is None and last.gave_up == "permanent: failed 3 times"


def test_a_counted_failure_follows_the_schedule_then_gives_up() -> None:
    delays = []
    for failures in range(3):
        decision = decide(FailureKind.FAILED, failures=failures)
        assert decision.retry_at is not None and decision.spends_attempt
        delays.append((decision.retry_at - NOW).total_seconds())
    assert delays[0] < delays[1] < delays[2]  # 1, 5, 30 s with ±20 % jitter
    out = decide(FailureKind.FAILED, failures=3)
    assert out.retry_at is None and "retries exhausted" in (out.gave_up or "")


def test_outages_in_between_do_not_use_up_the_schedule() -> None:
    # Many tries during an outage, one real failure: still on the schedule's first step.
    decision = decide(FailureKind.FAILED, tries=500, failures=0)
    assert decision.retries and decision.retry_at is not None
    assert decision.retry_at - NOW <= timedelta(seconds=1.2)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def test_failures_log_one_line_with_ids_and_next_try_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    failures = FailureLog(clock, window=timedelta(seconds=10))
    retry = decide(FailureKind.UNAVAILABLE)
    with caplog.at_level(logging.WARNING, logger="payrelay.failures"):
        for n in range(50):  # an outage: every row fails on every try
            failures.failed("processor", kind=FailureKind.UNAVAILABLE, order_id="o-1",
                            payment_id=str(n), error="GatewayUnavailable: HTTP 503",
                            decision=retry)
        clock.now += timedelta(seconds=11)
        failures.failed("processor", kind=FailureKind.UNAVAILABLE, order_id="o-2",
                        payment_id="99", error="GatewayUnavailable: HTTP 503", decision=retry)
    first, second = caplog.records  # the ids and the error ride as fields, not in the text
    assert (first.order_id, first.payment_id) == ("o-1", "0")  # type: ignore[attr-defined]
    assert "next try in" in first.getMessage() and "HTTP 503" in first.error  # type: ignore[attr-defined]
    assert (second.order_id, second.payment_id) == ("o-2", "99")  # type: ignore[attr-defined]
    assert "(+49 like it)" in second.getMessage() and second.suppressed == 49  # type: ignore[attr-defined]


def test_giving_up_is_always_logged(caplog: pytest.LogCaptureFixture) -> None:
    failures = FailureLog(Clock())
    dead = decide(FailureKind.PERMANENT, failures=5)
    with caplog.at_level(logging.WARNING, logger="payrelay.failures"):
        for n in range(3):
            failures.failed("refunder", kind=FailureKind.PERMANENT, order_id="o-1",
                            payment_id=str(n), error="GatewayRejected: HTTP 401",
                            decision=dead)
    assert len(caplog.records) == 3
    assert all(r.levelno == logging.ERROR and "gave up" in r.getMessage()
               for r in caplog.records)
