"""The naive pattern beside payrelay: the ratio of webhook p99s, and the table's rows.

payrelay's intake never waits for the order side (it stores the webhook and answers), so
its webhook figure at the same offered rate is the one to set beside the naive handler's,
whichever order service the naive one faces. Against the slow order service, payrelay's
own slow-order scenario (`results["recovery"]["slow_orders"]`, where the run has it) is
the closer match, on the same slowed database; otherwise its end-to-end step at the same
rate on PostgreSQL + RabbitMQ.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from benchmarks.harness import ratio

__all__ = ["naive_ratios", "naive_rows"]

DETAIL = {"healthy": "order service healthy", "slow": "200 ms per UPDATE",
          "down": "order service killed"}


def payrelay_webhooks(results: dict[str, Any], name: str, rate: float
                      ) -> tuple[str, dict[str, Any]] | None:
    """Where payrelay's comparable webhook answers are in `results`, and they, if measured."""
    slow = results.get("recovery", {}).get("slow_orders")
    if name == "slow" and slow and "webhook_answers" in slow:
        return f"recovery/slow_orders at {slow['offered_per_s']:g}/s", slow["webhook_answers"]
    at_rate = results.get("end_to_end", {}).get("postgres+rabbitmq", {}).get("at_rate", {})
    step = at_rate.get(str(int(rate)), {})
    if "webhook_answers" in step:
        return f"end_to_end/postgres+rabbitmq at {rate:g}/s", step["webhook_answers"]
    return None


def naive_ratios(results: dict[str, Any]) -> dict[str, Any]:
    """payrelay's webhook p99 over the naive handler's, per scenario (target: <= 0.1)."""
    out: dict[str, Any] = {}
    for name, got in results.get("naive", {}).items():
        found = payrelay_webhooks(results, name, got["offered_per_s"])
        if found is None:
            continue
        source, payrelay = found
        naive = got["webhook_answers"]
        out[f"naive/{name}"] = {
            "payrelay_p99_over_naive_p99": ratio(payrelay["p99_ms"], naive["p99_ms"]),
            "payrelay_p99_ms": payrelay["p99_ms"], "naive_p99_ms": naive["p99_ms"],
            "payrelay_from": source,
        }
    return out


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def naive_rows(table: Table, results: dict[str, Any]) -> None:
    """One row per naive scenario: webhook answers, what the orders say, the p99 ratio."""
    for name, got in results.get("naive", {}).items():
        answers = got["webhook_answers"]
        against = results.get("ratios", {}).get(f"naive/{name}", {})
        versus = (f"; payrelay p99 x{against['payrelay_p99_over_naive_p99']}"
                  if against else "")
        settled = "" if got["settled"] else f", not settled after {got['settle_timeout_s']:g} s"
        table.add_row(
            f"naive {name} ({DETAIL.get(name, name)})", f"{got['offered_per_s']:g}",
            f"{answers['statuses'].get('200', 0)} of {answers['sent']} 200 first time",
            _ms(answers["p50_ms"]), _ms(answers["p99_ms"]),
            f"{got['pending']} pending, {got['updated_twice']} updated twice of "
            f"{got['webhooks']}{settled}; {got['retried']} retried, {got['gave_up']} given "
            f"up{versus}")
