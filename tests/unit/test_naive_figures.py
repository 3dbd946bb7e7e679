"""The naive comparison's ratio: payrelay's webhook p99 over the naive handler's, set beside
the payrelay figure measured closest to the same conditions, and absent without one."""

from __future__ import annotations

from typing import Any

from benchmarks.naive.figures import naive_ratios


def naive(p99_ms: float) -> dict[str, Any]:
    return {"offered_per_s": 100.0, "webhook_answers": {"p99_ms": p99_ms}}


def end_to_end(p99_ms: float) -> dict[str, Any]:
    return {"postgres+rabbitmq": {"at_rate": {"100": {"webhook_answers": {"p99_ms": p99_ms}}}}}


def test_each_scenario_is_set_beside_payrelay_at_the_same_rate():
    ratios = naive_ratios({"naive": {"healthy": naive(10.0), "down": naive(5000.0)},
                           "end_to_end": end_to_end(20.0)})
    assert ratios["naive/healthy"]["payrelay_p99_over_naive_p99"] == 2.0
    assert ratios["naive/down"]["payrelay_p99_over_naive_p99"] == 0.004
    assert ratios["naive/down"]["payrelay_from"] == "end_to_end/postgres+rabbitmq at 100/s"


def test_the_slow_scenario_prefers_payrelay_on_the_same_slow_database():
    slow_orders = {"offered_per_s": 50.0, "webhook_answers": {"p99_ms": 50.0}}
    ratios = naive_ratios({"naive": {"slow": naive(5000.0)}, "end_to_end": end_to_end(20.0),
                           "recovery": {"slow_orders": slow_orders}})
    assert ratios["naive/slow"]["payrelay_p99_over_naive_p99"] == 0.01
    assert ratios["naive/slow"]["payrelay_from"] == "recovery/slow_orders at 50/s"


def test_no_ratio_without_a_payrelay_figure():
    assert naive_ratios({"naive": {"healthy": naive(10.0)}, "end_to_end": {}}) == {}
