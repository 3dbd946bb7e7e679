"""The Prometheus adapter of `ports.metrics.Metrics`: every `payrelay_*` series in one place.

Each instance has a registry of its own (never prometheus_client's global one), so two
systems in one process (tests, the demo) count apart. Gauges of outbox lag are read from
the databases at scrape time, so they are as fresh as the scrape and cost nothing between.
"""

from __future__ import annotations

import logging

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from payrelay.domain.errors import PayrelayError
from payrelay.ports.metrics import OutboxLagReader, Scrape

__all__ = ["PrometheusMetrics"]

log = logging.getLogger(__name__)

# Gateway calls: a fetch takes milliseconds; a timeout is gateway_timeout_seconds (5 s).
_GATEWAY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Approval to paid: under a second when all is well, minutes through an outage.
_PAID_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class PrometheusMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._received = Counter("payrelay_notifications_received", "Webhooks and IPNs "
                                 "answered, by result.", ["provider", "result"], registry=r)
        self._bad_signatures = Counter("payrelay_signature_failures", "Webhooks whose "
                                       "signature did not hold.", ["provider"], registry=r)
        self._gateway_seconds = Histogram("payrelay_gateway_call_seconds", "Gateway calls, "
                                          "by operation.", ["operation"], registry=r,
                                          buckets=_GATEWAY_BUCKETS)
        self._gateway_errors = Counter("payrelay_gateway_errors", "Failed gateway calls, by "
                                       "operation and error class.", ["operation", "error"],
                                       registry=r)
        self._confirms = Counter("payrelay_publish_confirms", "Outbox messages the transport "
                                 "confirmed.", ["relay"], registry=r)
        self._unconfirmed = Counter("payrelay_publish_failures", "Outbox messages the "
                                    "transport did not confirm (retried).", ["relay"], registry=r)
        self._consumed = Counter("payrelay_consumer_messages", "Messages of committed consumer "
                                 "batches, by outcome.", ["consumer", "outcome"], registry=r)
        self._retries = Counter("payrelay_retries", "Failed tries of stored work that will be "
                                "tried again.", ["step", "kind"], registry=r)
        self._gave_up = Counter("payrelay_gave_up", "Failed tries given up: dead notifications, "
                                "refunds and messages.", ["step"], registry=r)
        self._dead_letters = Counter("payrelay_dead_letters_stored", "Dead letters stored from "
                                     "a transport.", ["subscription"], registry=r)
        self._fixes = Counter("payrelay_reconciler_fixes", "Work the reconciler put back on "
                              "the normal path.", ["check"], registry=r)
        self._refunds = Counter("payrelay_refunds", "Refund outcomes.", ["result"], registry=r)
        self._paid = Histogram("payrelay_approval_to_paid_seconds", "From the payment's "
                               "approval to its order's payment_applied reaching payments.",
                               registry=r, buckets=_PAID_BUCKETS)
        self._outbox_rows = Gauge("payrelay_outbox_pending_rows", "Outbox rows not yet "
                                  "confirmed.", ["outbox"], registry=r)
        self._outbox_age = Gauge("payrelay_outbox_oldest_pending_seconds", "Age of the oldest "
                                 "pending outbox row (0: none).", ["outbox"], registry=r)
        self._outboxes: dict[str, OutboxLagReader] = {}
        self._start_at_zero()

    def _start_at_zero(self) -> None:
        """The series a dashboard expects from the start, at zero until something happens."""
        for check in ("resent_approvals", "lost_payments_found", "unsettled_refetched"):
            self._fixes.labels(check)
        for result in ("requested", "held", "refunded", "already_covered", "retried", "dead"):
            self._refunds.labels(result)

    def notification_received(self, *, provider: str, result: str) -> None:
        self._received.labels(provider, result).inc()

    def signature_failed(self, *, provider: str) -> None:
        self._bad_signatures.labels(provider).inc()

    def gateway_called(self, *, operation: str, seconds: float, error: str | None) -> None:
        self._gateway_seconds.labels(operation).observe(seconds)
        if error is not None:
            self._gateway_errors.labels(operation, error).inc()

    def published(self, *, relay: str, confirmed: int, failed: int) -> None:
        self._confirms.labels(relay).inc(confirmed)
        self._unconfirmed.labels(relay).inc(failed)

    def consumed(self, *, consumer: str, outcome: str, count: int) -> None:
        if count:
            self._consumed.labels(consumer, outcome).inc(count)

    def retried(self, *, step: str, kind: str) -> None:
        self._retries.labels(step, kind).inc()

    def gave_up(self, *, step: str) -> None:
        self._gave_up.labels(step).inc()

    def dead_lettered(self, *, subscription: str, count: int) -> None:
        self._dead_letters.labels(subscription).inc(count)

    def reconciler_fixed(self, *, check: str, count: int) -> None:
        if count:
            self._fixes.labels(check).inc(count)

    def refund_finished(self, *, result: str) -> None:
        self._refunds.labels(result).inc()

    def order_paid(self, *, seconds_since_approval: float) -> None:
        self._paid.observe(max(seconds_since_approval, 0.0))

    def watch_outbox(self, name: str, read: OutboxLagReader) -> None:
        self._outboxes[name] = read
        self._outbox_rows.labels(name).set(0)
        self._outbox_age.labels(name).set(0)

    async def scrape(self) -> Scrape:
        for name, read in self._outboxes.items():
            try:
                lag = await read()
            except PayrelayError as exc:  # the last values stand; the reason, no URL
                log.warning("outbox lag unreadable", extra={"outbox": name,
                                                            "error": type(exc).__name__})
                continue
            self._outbox_rows.labels(name).set(lag.rows)
            self._outbox_age.labels(name).set(lag.oldest_seconds)
        return Scrape(generate_latest(self.registry), CONTENT_TYPE_LATEST)
