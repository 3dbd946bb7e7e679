"""The sweep's settings: defaults, the policy they make, and what is refused at load."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from payrelay.config import Settings


def test_sweep_defaults_make_the_policy() -> None:
    policy = Settings().reconcile_policy()
    assert policy.sweep_overlap == timedelta(minutes=2)
    assert (policy.sweep_page_size, policy.sweep_max_pages) == (100, 20)
    assert policy.sweep_first_lookback == timedelta(days=2)


def test_overridden_sweep_settings_reach_the_policy() -> None:
    settings = Settings(
        reconcile_sweep_overlap_seconds=30, reconcile_sweep_page_size=1000,
        reconcile_sweep_max_pages=3, reconcile_sweep_lookback_seconds=600,
    )
    policy = settings.reconcile_policy()
    assert (policy.sweep_overlap, policy.sweep_page_size, policy.sweep_max_pages) == (
        timedelta(seconds=30), 1000, 3
    )
    assert policy.sweep_first_lookback == timedelta(minutes=10)


@pytest.mark.parametrize(
    "bad",
    [
        {"reconcile_sweep_page_size": 1001},
        {"reconcile_sweep_page_size": 0},
        {"reconcile_sweep_max_pages": 0},
        {"reconcile_sweep_overlap_seconds": -1},
        {"reconcile_sweep_lookback_seconds": 0},
    ],
)
def test_impossible_sweep_settings_are_refused_at_load(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError, match=next(iter(bad))):
        Settings(**bad)
