"""Named fault-injection points, one per failure window the design claims to close.

Services call `faults.check(FaultPoint.X)` at the exact spot where a crash or an outage
would hurt; tests and the demo arm points to force that window open. In production nothing
is armed and a check is one dict lookup.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from payrelay.domain.errors import InjectedFault


class FaultPoint(StrEnum):
    WEBHOOK_AFTER_RECORD = "webhook.after_record"
    """Notification committed, process dies before answering 200: the gateway retries."""
    PROCESSOR_BEFORE_COMMIT = "processor.before_commit"
    """Payment fetched and applied, crash before the state + outbox commit."""
    RELAY_BEFORE_PUBLISH = "relay.before_publish"
    """Outbox rows committed, crash before they reach the broker."""
    RELAY_AFTER_PUBLISH = "relay.after_publish"
    """Broker confirmed, crash before the rows are marked sent: they go out again."""
    ORDER_CONSUMER_BEFORE_COMMIT = "order_consumer.before_commit"
    """The order database transaction fails: nothing is acked, the event stays pending."""
    ORDER_CONSUMER_AFTER_COMMIT = "order_consumer.after_commit"
    """Order committed, consumer dies before the ack: the redelivery meets the inbox."""
    OUTCOME_CONSUMER_BEFORE_COMMIT = "outcome_consumer.before_commit"
    """The payments side fails to record the order's answer: it is delivered again."""
    REFUND_ANSWER_LOST = "refund.answer_lost"
    """The gateway refunded but its answer never came back (a timeout): unknown outcome."""


@dataclass
class _Arming:
    remaining: int | None  # None: until disarmed
    probability: float


class Faults:
    """Which points are armed; `fired` counts how often each one went off."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._armed: dict[FaultPoint, _Arming] = {}
        self._rng = rng or random.Random()
        self.fired: Counter[FaultPoint] = Counter()

    def arm(self, point: FaultPoint, *, times: int | None = 1, probability: float = 1.0) -> None:
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None: until disarmed)")
        self._armed[point] = _Arming(times, probability)

    def disarm(self, point: FaultPoint | None = None) -> None:
        if point is None:
            self._armed.clear()
        else:
            self._armed.pop(point, None)

    def check(self, point: FaultPoint) -> None:
        arming = self._armed.get(point)
        if arming is None or self._rng.random() >= arming.probability:
            return
        if arming.remaining is not None:
            arming.remaining -= 1
            if arming.remaining <= 0:
                del self._armed[point]
        self.fired[point] += 1
        raise InjectedFault(point.value)

