"""The names both services and every transport agree on: exchanges and subscriptions."""

from __future__ import annotations

from payrelay.ports import Subscription

PAYMENTS_EXCHANGE = "payrelay.payments"
"""Payment events, routed by type (`payment.approved`, …)."""
ORDERS_EXCHANGE = "payrelay.orders"
"""The order side's answers (`order.payment_applied`, `order.payment_rejected`)."""

ORDER_SIDE_SUBSCRIPTION = Subscription(
    queue="orders.payment-events", exchange=PAYMENTS_EXCHANGE, patterns=("payment.*",)
)
PAYMENTS_SIDE_SUBSCRIPTION = Subscription(
    queue="payments.order-events", exchange=ORDERS_EXCHANGE, patterns=("order.*",)
)
STANDARD_SUBSCRIPTIONS = (ORDER_SIDE_SUBSCRIPTION, PAYMENTS_SIDE_SUBSCRIPTION)
