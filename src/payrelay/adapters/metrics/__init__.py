"""Metrics adapters: the Prometheus registry, a timed gateway, outbox lag read at scrape."""

from __future__ import annotations

from payrelay.adapters.metrics.gateway import TimedGateway
from payrelay.adapters.metrics.outbox_lag import outbox_lag_reader
from payrelay.adapters.metrics.prometheus import PrometheusMetrics
from payrelay.adapters.resources import AdapterResources
from payrelay.ports import Clock

__all__ = ["PrometheusMetrics", "TimedGateway", "outbox_lag_reader", "prometheus_metrics"]


def prometheus_metrics(resources: AdapterResources, clock: Clock) -> PrometheusMetrics:
    """A registry of every payrelay series, both outboxes' lag read at each scrape."""
    metrics = PrometheusMetrics()
    payments, orders = resources.payments_db, resources.orders_db
    metrics.watch_outbox("payments", outbox_lag_reader(payments, orders_side=False, clock=clock))
    if orders is not None:  # a payments-only deployment has no orders outbox
        metrics.watch_outbox("orders", outbox_lag_reader(orders, orders_side=True, clock=clock))
    return metrics
