"""A process declares the queues of the consumer roles it runs, and no others."""

from __future__ import annotations

from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION, PAYMENTS_SIDE_SUBSCRIPTION
from payrelay.system import Role, Side, subscriptions_for

PAYMENTS_ROLES = [r for r in Role if r.side is Side.PAYMENTS]


def test_payments_roles_declare_only_the_outcome_queue() -> None:
    assert subscriptions_for(PAYMENTS_ROLES) == (PAYMENTS_SIDE_SUBSCRIPTION,)
    assert ORDER_SIDE_SUBSCRIPTION not in subscriptions_for(
        [Role.PAYMENTS_RELAY, Role.PROCESSOR, Role.PAYMENTS_API])


def test_relays_and_apis_declare_no_queue_and_all_roles_declare_both() -> None:
    assert subscriptions_for([Role.PAYMENTS_RELAY, Role.ORDERS_RELAY, Role.ORDERS_API]) == ()
    assert subscriptions_for(Role) == (ORDER_SIDE_SUBSCRIPTION, PAYMENTS_SIDE_SUBSCRIPTION)
    assert subscriptions_for([Role.ORDER_CONSUMER]) == (ORDER_SIDE_SUBSCRIPTION,)
