"""One log line per failure: the step, the order and payment, the error, and what comes next.

A long outage makes every stored row fail on every try. So lines are rate-limited per step
and kind of failure: the first of each window is written, the rest are counted, and the
count rides on the next line written (`suppressed`). Giving up is never rate-limited:
each one is a payment a person may have to look at. Every try is counted in the metrics,
written or not.

The ids travel as `extra` fields (`order_id`, `payment_id`, `correlation_id`), which the
entrypoints' log configuration (entrypoints/logs.py) turns into JSON fields; services keep
to the standard library's `logging`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from payrelay.domain.retry import FailureKind, RetryDecision
from payrelay.ports import Clock
from payrelay.ports.metrics import Metrics, NoMetrics

log = logging.getLogger("payrelay.failures")
events_log = logging.getLogger("payrelay.events")


def payment_fields(
    order_id: str | None, payment_id: str | None, correlation_id: str | None = None
) -> dict[str, str | None]:
    """The `extra` of a line about a payment: every such line carries all three ids."""
    return {"order_id": order_id, "payment_id": payment_id, "correlation_id": correlation_id}


def payment_fields_in(body: bytes) -> dict[str, str | None]:
    """`payment_fields` of a message body, as far as it says (a dead or failing message)."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return payment_fields(None, None)
    ids = [data.get(k) for k in ("order_id", "payment_id", "correlation_id")]
    order_id, payment_id, correlation_id = (v if isinstance(v, str) else None for v in ids)
    return payment_fields(order_id, payment_id, correlation_id)


@dataclass
class _Window:
    opened: datetime
    suppressed: int = 0


@dataclass
class FailureLog:
    clock: Clock
    window: timedelta = timedelta(seconds=10)
    logger: logging.Logger = log
    events: logging.Logger = events_log
    metrics: Metrics = field(default_factory=NoMetrics)
    _windows: dict[tuple[str, FailureKind], _Window] = field(default_factory=dict)

    def failed(
        self,
        step: str,
        *,
        kind: FailureKind,
        order_id: str | None,
        payment_id: str | None,
        error: str,
        decision: RetryDecision,
        correlation_id: str | None = None,
    ) -> None:
        """Log one failed try: its retry (rate-limited), or that it was given up."""
        fields = {**payment_fields(order_id, payment_id, correlation_id), "step": step,
                  "kind": kind.value, "error": error[:300]}
        if decision.retry_at is None:
            self.metrics.gave_up(step=step)
            self.logger.error("%s gave up; kept for `payrelay dlq`", step,
                              extra={**fields, "reason": decision.gave_up})
            return
        self.metrics.retried(step=step, kind=kind.value)
        now = self.clock()
        key = (step, kind)
        window = self._windows.get(key)
        if window is not None and now - window.opened < self.window:
            window.suppressed += 1
            return
        suppressed = window.suppressed if window else 0
        self._windows[key] = _Window(opened=now)
        wait = (decision.retry_at - now).total_seconds()
        more = f" (+{suppressed} like it)" if suppressed else ""
        self.logger.warning("%s failed (%s); next try in %.1fs%s", step, kind.value, wait, more,
                            extra={**fields, "retry_in_seconds": round(wait, 1),
                                   "suppressed": suppressed})

    def event(self, step: str, *, order_id: str | None, payment_id: str | None,
              detail: str, correlation_id: str | None = None) -> None:
        """A business event a person may look for that is not a failed try (a held refund,
        a dead letter): at INFO, never rate-limited."""
        self.events.info("%s: %s", step, detail, extra={
            **payment_fields(order_id, payment_id, correlation_id), "step": step,
        })
