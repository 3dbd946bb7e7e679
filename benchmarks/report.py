"""The results as ratios to the ceilings, a table on the terminal, and a PNG plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.harness import ratio
from benchmarks.naive.figures import naive_ratios, naive_rows

RAW_DB = {"embedded": "sqlite", "postgres+rabbitmq": "postgres"}


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """Each payrelay figure over the ceiling it is bounded by, all from this run."""
    ceilings = results.get("ceilings", {})
    raw = ceilings.get("raw_ingest", {})
    out: dict[str, Any] = {}
    for backend, ingest in results.get("ingest", {}).items():
        ceiling = raw.get(RAW_DB[backend])
        if not ceiling or "saturation" not in ingest:
            continue
        entry = {"webhooks_per_s_over_raw": ratio(ingest["saturation"]["answered_per_s"],
                                                  ceiling["saturation"]["answered_per_s"])}
        for rate, got in ingest["at_rate"].items():
            base = ceiling["at_rate"].get(rate, {})
            entry[f"p50_at_{rate}_over_raw"] = ratio(got["p50_ms"], base.get("p50_ms"))
            entry[f"p99_at_{rate}_over_raw"] = ratio(got["p99_ms"], base.get("p99_ms"))
        out[f"ingest/{backend}"] = entry
    pg_tx = ceilings.get("postgres_transactions", {}).get("transactions_per_s")
    mq = ceilings.get("rabbitmq_confirmed", {}).get("messages_per_s")
    for backend, e2e in results.get("end_to_end", {}).items():
        paid = e2e.get("saturation", {}).get("paid_per_s")
        entry = {}
        if raw.get(RAW_DB[backend]):
            entry["paid_per_s_over_raw_ingest"] = ratio(
                paid, raw[RAW_DB[backend]]["saturation"]["answered_per_s"])
        if backend == "postgres+rabbitmq":
            entry["paid_per_s_over_postgres_transactions"] = ratio(paid, pg_tx)
            entry["paid_per_s_over_rabbitmq_messages"] = ratio(paid, mq)
        out[f"end_to_end/{backend}"] = entry
    out.update(naive_ratios(results))
    return out


def _ms(value: float | None) -> str:
    """A percentile; '>cutoff' where it falls on an order not PAID by the step's end."""
    return ">cutoff" if value is None else f"{value:.1f}"


def _unpaid(step: dict[str, Any]) -> str:
    if step["drained"]:
        return "all PAID"
    return (f"{step['unpaid_at_cutoff']} of {step['webhooks']} not PAID "
            f"{step['cutoff_after_last_send_s']:g} s after the last webhook")


def render(results: dict[str, Any], console: Console) -> None:
    table = Table(title=f"payrelay bench {results['date']} ({results['wall_seconds']:.0f} s)")
    for column in ("scenario", "offered/s", "done/s", "p50 ms", "p99 ms", "vs ceiling"):
        table.add_column(column)
    _ceiling_rows(table, results.get("ceilings", {}))
    _ingest_rows(table, results)
    _end_to_end_rows(table, results)
    naive_rows(table, results)
    console.print(table)
    for item in results.get("skipped", []):
        console.print(f"skipped {item['scenario']}: {item['reason']}")
    for item in results.get("failed", []):
        console.print(f"[red]failed {item['scenario']}: {item['reason']}[/red]")


def _ceiling_rows(table: Table, ceilings: dict[str, Any]) -> None:
    for db, got in ceilings.get("raw_ingest", {}).items():
        sat = got["saturation"]
        table.add_row(f"ceiling raw ASGI+insert {db}", "max", str(sat["answered_per_s"]),
                      _ms(sat["p50_ms"]), _ms(sat["p99_ms"]), "1")
        for rate, at in got["at_rate"].items():
            table.add_row("", rate, str(at["answered_per_s"]), _ms(at["p50_ms"]),
                          _ms(at["p99_ms"]), "")
    for name in ("postgres_transactions", "rabbitmq_confirmed"):
        if name in ceilings:
            value = ceilings[name]
            per_s = value.get("transactions_per_s") or value.get("messages_per_s")
            table.add_row(f"ceiling {name}", "max", str(per_s), "", "", "1")


def _ingest_rows(table: Table, results: dict[str, Any]) -> None:
    for backend, got in results.get("ingest", {}).items():
        r = results.get("ratios", {}).get(f"ingest/{backend}", {})
        sat = got["saturation"]
        table.add_row(f"ingest {backend}", "max", str(sat["answered_per_s"]),
                      _ms(sat["p50_ms"]), _ms(sat["p99_ms"]),
                      f"{r.get('webhooks_per_s_over_raw')} of raw/s")
        for rate, at in got["at_rate"].items():
            table.add_row("", rate, str(at["answered_per_s"]), _ms(at["p50_ms"]),
                          _ms(at["p99_ms"]), f"p50 x{r.get(f'p50_at_{rate}_over_raw')}, "
                          f"p99 x{r.get(f'p99_at_{rate}_over_raw')} raw")


def _end_to_end_rows(table: Table, results: dict[str, Any]) -> None:
    for backend, got in results.get("end_to_end", {}).items():
        r = results.get("ratios", {}).get(f"end_to_end/{backend}", {})
        sat = got["saturation"]
        shown = ", ".join(f"{v} {k.removeprefix('paid_per_s_over_')}" for k, v in r.items())
        table.add_row(f"webhook->PAID {backend}", f"burst {sat['webhooks']}",
                      str(sat["paid_per_s"]), _ms(sat["p50_ms"]), _ms(sat["p99_ms"]),
                      f"{shown}; {_unpaid(sat)}")
        for rate, at in got["at_rate"].items():
            table.add_row("", rate, str(at["paid_per_s"]), _ms(at["p50_ms"]),
                          _ms(at["p99_ms"]), _unpaid(at))


def plot(results: dict[str, Any], path: Path) -> str | None:
    """Latency percentiles and PAID/s against offered load, per backend; None if drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    fig, (lat, thr) = plt.subplots(1, 2, figsize=(12, 4.5))
    for index, (backend, got) in enumerate(results.get("end_to_end", {}).items()):
        color = f"C{index}"
        points = [(float(r), s) for r, s in got["at_rate"].items() if "skipped" not in s]
        if not points:
            continue
        xs = [x for x, _ in points]
        lat.plot(xs, [s["p50_ms"] for _, s in points], "o-", color=color,
                 label=f"{backend} p50")
        lat.plot(xs, [s["p99_ms"] for _, s in points], "s--", color=color,
                 label=f"{backend} p99")
        thr.plot(xs, [s["paid_per_s"] for _, s in points], "o-", color=color, label=backend)
        sat = got["saturation"].get("paid_per_s")
        if sat:
            thr.axhline(sat, linestyle=":", color=color, label=f"{backend} saturation (burst)")
    lat.set(xscale="log", yscale="log", xlabel="offered webhooks/s",
            ylabel="webhook -> PAID latency (ms)", title="latency vs offered load")
    top = max([float(r) for got in results.get("end_to_end", {}).values()
               for r in got["at_rate"]] or [1.0])
    thr.plot([1, top], [1, top], color="grey", linewidth=0.5, label="offered")
    thr.set(xscale="log", yscale="log", xlabel="offered webhooks/s", ylabel="orders PAID/s",
            title="PAID/s vs offered load")
    lat.text(0.02, 0.02, "a step whose p50/p99 fell on an unpaid order has no point",
             transform=lat.transAxes, fontsize=7)
    for ax in (lat, thr):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"payrelay bench {results['date']} (ratios in the JSON)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
