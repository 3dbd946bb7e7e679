"""Fault injection points fire as armed; the retry backoff stays in its jitter window."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payrelay.domain.errors import InjectedFault
from payrelay.domain.retry import Backoff
from payrelay.faults import FaultPoint, Faults

POINT = FaultPoint.RELAY_BEFORE_PUBLISH
OTHER = FaultPoint.ORDER_CONSUMER_AFTER_COMMIT
MICROSECOND = 1e-6  # timedelta keeps microseconds: allow one of rounding


def fires(faults: Faults, point: FaultPoint, checks: int) -> int:
    """How many of `checks` consecutive checks raised InjectedFault."""
    count = 0
    for _ in range(checks):
        try:
            faults.check(point)
        except InjectedFault as exc:
            assert exc.point == point.value
            count += 1
    return count


# --- Faults ---------------------------------------------------------------------------


def test_nothing_armed_never_fires() -> None:
    faults = Faults(random.Random(1))
    assert sum(fires(faults, point, 20) for point in FaultPoint) == 0
    assert not faults.fired


@pytest.mark.parametrize("times", [1, 2, 5])
def test_armed_point_fires_exactly_times_times(times: int) -> None:
    faults = Faults(random.Random(1))
    faults.arm(POINT, times=times)
    assert fires(faults, POINT, times + 10) == times
    assert faults.fired[POINT] == times


def test_arming_zero_times_is_refused_and_nothing_fires() -> None:
    faults = Faults(random.Random(1))
    with pytest.raises(ValueError, match="at least 1"):
        faults.arm(POINT, times=0)
    assert fires(faults, POINT, 5) == 0


def test_times_none_fires_until_disarmed() -> None:
    faults = Faults(random.Random(1))
    faults.arm(POINT, times=None)
    assert fires(faults, POINT, 50) == 50
    faults.disarm(POINT)
    assert fires(faults, POINT, 10) == 0
    assert faults.fired[POINT] == 50


def test_probability_zero_never_fires() -> None:
    faults = Faults(random.Random(1))
    faults.arm(POINT, times=None, probability=0.0)
    assert fires(faults, POINT, 1000) == 0
    assert faults.fired[POINT] == 0


def test_probability_zero_does_not_use_up_the_times() -> None:
    faults = Faults(random.Random(1))
    faults.arm(POINT, times=1, probability=0.0)
    fires(faults, POINT, 100)
    faults.arm(POINT, times=1, probability=1.0)
    assert fires(faults, POINT, 3) == 1


def test_probability_half_fires_some_of_the_time() -> None:
    faults = Faults(random.Random(7))
    faults.arm(POINT, times=None, probability=0.5)
    count = fires(faults, POINT, 1000)
    assert 350 < count < 650


def test_a_point_is_independent_of_the_others() -> None:
    faults = Faults(random.Random(1))
    faults.arm(POINT, times=None)
    assert fires(faults, OTHER, 10) == 0
    assert fires(faults, POINT, 3) == 3
    assert faults.fired == {POINT: 3}


def test_disarm_one_point_keeps_the_others() -> None:
    faults = Faults(random.Random(1))
    faults.arm(POINT, times=None)
    faults.arm(OTHER, times=None)
    faults.disarm(OTHER)
    assert fires(faults, OTHER, 3) == 0
    assert fires(faults, POINT, 3) == 3


def test_disarm_all() -> None:
    faults = Faults(random.Random(1))
    for point in FaultPoint:
        faults.arm(point, times=None)
    faults.disarm()
    assert sum(fires(faults, point, 5) for point in FaultPoint) == 0


def test_disarming_an_unarmed_point_is_harmless() -> None:
    faults = Faults(random.Random(1))
    faults.disarm(POINT)
    assert fires(faults, POINT, 3) == 0


def test_rearming_replaces_the_remaining_count() -> None:
    faults = Faults(random.Random(1))
    faults.arm(POINT, times=5)
    fires(faults, POINT, 1)
    faults.arm(POINT, times=1)
    assert fires(faults, POINT, 10) == 1
    assert faults.fired[POINT] == 2


# --- Backoff --------------------------------------------------------------------------

BACKOFFS = [Backoff(), Backoff(base=0.05, cap=5.0), Backoff(base=1.0, factor=3.0, cap=60.0)]


def ceiling(backoff: Backoff, attempt: int) -> float:
    """The top of retry `attempt`'s window, computed without float overflow."""
    top = backoff.base
    for _ in range(max(attempt - 1, 0)):
        top *= backoff.factor
        if top >= backoff.cap:
            return backoff.cap
    return min(top, backoff.cap)


@given(
    backoff=st.sampled_from(BACKOFFS),
    attempt=st.integers(min_value=1, max_value=200),
    seed=st.integers(),
)
def test_delay_stays_within_half_ceiling_and_ceiling(
    backoff: Backoff, attempt: int, seed: int
) -> None:
    top = ceiling(backoff, attempt)
    delay = backoff.delay(attempt, random.Random(seed)).total_seconds()
    assert top / 2 - MICROSECOND <= delay <= top + MICROSECOND


@given(attempt=st.integers(min_value=1, max_value=10), seed=st.integers())
def test_delay_grows_with_the_attempt_until_the_cap(attempt: int, seed: int) -> None:
    """With factor 2 the windows [c/2, c] and [c, 2c] touch: the next delay is never shorter."""
    backoff = Backoff()  # 0.5 s doubling: attempt 11 (512 s) is the last one under 600 s
    rng = random.Random(seed)
    assert backoff.delay(attempt + 1, rng) >= backoff.delay(attempt, rng)


def test_first_ceilings_double_from_base() -> None:
    backoff = Backoff(base=0.5, factor=2.0, cap=600.0)
    rng = random.Random(3)
    for attempt, top in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (11, 512.0)]:
        for _ in range(20):
            assert top / 2 <= backoff.delay(attempt, rng).total_seconds() <= top


@given(attempt=st.integers(min_value=1, max_value=100_000), seed=st.integers())
def test_delay_is_capped_for_any_attempt(attempt: int, seed: int) -> None:
    backoff = Backoff(base=0.05, cap=5.0)
    delay = backoff.delay(attempt, random.Random(seed))
    assert delay <= timedelta(seconds=5.0)


def test_a_very_late_attempt_waits_the_cap_instead_of_overflowing() -> None:
    """run_loop counts consecutive failures without bound; the relay counts attempts too."""
    backoff = Backoff(base=0.05, cap=5.0)
    delay = backoff.delay(1100, random.Random(1))
    assert timedelta(seconds=2.5) <= delay <= timedelta(seconds=5.0)


@pytest.mark.parametrize("attempt", [0, -3])
def test_attempt_below_one_uses_the_base_window(attempt: int) -> None:
    backoff = Backoff()
    assert 0.25 <= backoff.delay(attempt, random.Random(5)).total_seconds() <= 0.5


def test_next_attempt_at_is_now_plus_the_delay() -> None:
    now = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    backoff = Backoff()
    at = backoff.next_attempt_at(now, 4, random.Random(9))
    assert at == now + backoff.delay(4, random.Random(9))
    assert now + timedelta(seconds=2) <= at <= now + timedelta(seconds=4)
