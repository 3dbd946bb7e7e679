"""One log line per failure: the step, the order and payment, the error, and what comes next.

A long outage makes every stored row fail on every try. So lines are rate-limited per step
and kind of failure: the first of each window is written, the rest are counted, and the
count rides on the next line written ("+41 like it"). Giving up is never rate-limited:
each one is a payment a person may have to look at.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from payrelay.domain.retry import FailureKind, RetryDecision
from payrelay.ports import Clock

log = logging.getLogger("payrelay.failures")


@dataclass
class _Window:
    opened: datetime
    suppressed: int = 0


@dataclass
class FailureLog:
    clock: Clock
    window: timedelta = timedelta(seconds=10)
    logger: logging.Logger = log
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
    ) -> None:
        """Log one failed try: its retry (rate-limited), or that it was given up."""
        ids = f"order_id={order_id or '-'} payment_id={payment_id or '-'}"
        if decision.retry_at is None:
            self.logger.error("%s gave up: %s error=%r reason=%r; kept for `payrelay dlq`",
                              step, ids, error[:300], decision.gave_up)
            return
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
        self.logger.warning("%s failed (%s): %s error=%r; next try in %.1fs%s",
                            step, kind.value, ids, error[:300], wait, more)

    def event(self, step: str, *, order_id: str | None, payment_id: str | None,
              detail: str) -> None:
        """Something a person should hear of that is not a failed try (a held refund)."""
        self.logger.warning("%s: order_id=%s payment_id=%s %s",
                            step, order_id or "-", payment_id or "-", detail)
