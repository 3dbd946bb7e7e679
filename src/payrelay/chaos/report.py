"""What a chaos run prints: one line of violation counts, a table, or the same as JSON."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from payrelay.chaos.checker import SUMMARY, Verdict, Violation
from payrelay.chaos.schedule import InjectedFault

SHOWN_FINDINGS = 20


@dataclass
class ChaosReport:
    backend: str
    seed: int
    verdict: Verdict
    faults: list[InjectedFault]
    figures: dict[str, int | str] = field(default_factory=dict)
    """What the run did: customers, payments, restarts, timings..."""
    drain: dict[str, dict[str, float | int]] = field(default_factory=dict)
    """Per fault kind, seconds from a fault's end until the backlog was empty (drain.py)."""
    log_dir: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict.ok

    def counts(self) -> dict[str, int]:
        return {v.value: self.verdict.count(v) for v in Violation}

    def summary_line(self) -> str:
        """`LOST=0 STUCK_BEYOND_SLA=0 DUPLICATED_EFFECTS=0 ...`: the five, in this order."""
        counts = self.counts()
        return " ".join(f"{v.value}={counts[v.value]}" for v in SUMMARY)

    def faults_by_kind(self) -> dict[str, int]:
        return dict(Counter(f.planned.kind.value for f in self.faults))

    def to_json(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "ok": self.ok,
            "summary": self.summary_line(),
            "violations": self.counts(),
            "backend": self.backend,
            "seed": self.seed,
            "figures": self.figures,
            "approved_payments": dict(v.classes),
            "evidence_of_recovery": v.evidence,
            "approval_to_paid_ms": v.latency_ms,
            "faults_by_kind": self.faults_by_kind(),
            "drain_after_fault": self.drain,
            "faults": [
                {"kind": f.planned.kind.value, "target": f.planned.target,
                 "started_s": round(f.started, 3), "ended_s": round(f.ended, 3),
                 "detail": f.detail}
                for f in self.faults
            ],
            "findings": [
                {"violation": f.violation.value, "order_id": f.order_id,
                 "payment_id": f.payment_id, "detail": f.detail}
                for f in v.findings
            ],
            "log_dir": self.log_dir,
        }

    def render(self, console: Console) -> None:
        v = self.verdict
        table = Table(title=f"payrelay chaos: {self.backend}, seed {self.seed}",
                      show_header=False)
        for name, value in self.figures.items():
            table.add_row(name, str(value))
        for name, count in sorted(v.classes.items()):
            table.add_row(f"approved payments: {name}", str(count))
        for name, count in v.evidence.items():
            table.add_row(f"recovery: {name}", str(count))
        if v.latency_ms:
            table.add_row("approval -> PAID", ", ".join(
                f"{k} {ms:.0f} ms" for k, ms in v.latency_ms.items()))
        table.add_row("faults injected", ", ".join(
            f"{kind} {n}" for kind, n in sorted(self.faults_by_kind().items())) or "none")
        for kind, times in self.drain.items():
            shown = f"p50 {times['p50_s']} s, max {times['max_s']} s" if "p50_s" in times \
                else "-"
            table.add_row(f"backlog drained after {kind}", f"{shown} "
                          f"({times['never_drained']} of {times['faults']} never)")
        for violation in Violation:
            count = v.count(violation)
            mark = "[green]0[/green]" if not count else f"[red]{count}[/red]"
            table.add_row(f"violations: {violation.value}", mark)
        console.print(table)
        for finding in v.findings[:SHOWN_FINDINGS]:
            console.print(f"[red]{finding.violation.value}[/red] order_id={finding.order_id} "
                          f"payment_id={finding.payment_id} {finding.detail}", highlight=False,
                          soft_wrap=True)
        if len(v.findings) > SHOWN_FINDINGS:
            console.print(f"... and {len(v.findings) - SHOWN_FINDINGS} more (see --json)")
        console.print(self.summary_line(), highlight=False, soft_wrap=True)
