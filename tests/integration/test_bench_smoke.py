"""`make bench` in miniature: the bench starts what it needs, writes its JSON, and the
webhooks it sends get orders PAID. Never a timing: this machine is shared."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import POSTGRES_URL, RABBITMQ_URL, require_server

ROOT = Path(__file__).resolve().parents[2]


def quick_bench(out: Path, backend: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--no-plot", "--backend", backend,
         "--out", str(out), "--postgres-url", POSTGRES_URL, "--rabbitmq-url", RABBITMQ_URL],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [written] = out.glob("quick-*.json")
    results: dict[str, object] = json.loads(written.read_text())
    return results


def assert_paid(results: dict[str, object], backend: str) -> None:
    assert {"date", "wall_seconds", "plan", "ceilings", "ingest", "end_to_end", "naive",
            "ratios", "skipped", "failed"} <= results.keys()
    assert results["failed"] == []
    e2e = results["end_to_end"][backend]  # type: ignore[index]
    assert e2e["saturation"]["paid"] == e2e["saturation"]["webhooks"] > 0
    for step in e2e["at_rate"].values():
        assert "skipped" in step or step["paid"] == step["webhooks"] > 0
    ingest = results["ingest"][backend]  # type: ignore[index]
    assert ingest["saturation"]["ok"] == ingest["saturation"]["sent"] > 0
    assert "sqlite" in results["ceilings"]["raw_ingest"]  # type: ignore[index]


def assert_naive_side_by_side(results: dict[str, object]) -> None:
    """Each naive scenario ran and was counted; with a healthy order service, no order is
    left pending (what the slow and the killed one leave is the finding, not a rule)."""
    naive = results["naive"]
    assert naive.keys() == {"healthy", "slow", "down"}  # type: ignore[attr-defined]
    for got in naive.values():  # type: ignore[attr-defined]
        assert got["webhook_answers"]["sent"] == got["webhooks"] > 0
        assert {"pending", "updated_twice", "retried", "gave_up", "settled"} <= got.keys()
    assert naive["healthy"]["pending"] == 0  # type: ignore[index]
    assert naive["down"]["order_service"]["down_s"] > 0  # type: ignore[index]
    assert {"naive/healthy", "naive/slow", "naive/down"} <= results["ratios"].keys()  # type: ignore[attr-defined]


def test_quick_bench_on_the_embedded_default(tmp_path: Path):
    results = quick_bench(tmp_path, "embedded")
    assert_paid(results, "embedded")
    assert "naive" in [s["scenario"] for s in results["skipped"]]  # type: ignore[attr-defined]


@pytest.mark.postgres
@pytest.mark.rabbitmq
def test_quick_bench_on_postgres_and_rabbitmq(tmp_path: Path):
    require_server("PostgreSQL", POSTGRES_URL)
    require_server("RabbitMQ", RABBITMQ_URL)
    results = quick_bench(tmp_path, "postgres+rabbitmq")
    assert_paid(results, "postgres+rabbitmq")
    assert_naive_side_by_side(results)
    ceilings = results["ceilings"]
    assert {"postgres", "sqlite"} <= ceilings["raw_ingest"].keys()  # type: ignore[index]
    assert {"postgres_transactions", "rabbitmq_confirmed"} <= ceilings.keys()  # type: ignore[operator]
