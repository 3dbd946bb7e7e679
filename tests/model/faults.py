"""The faults a machine step may bring: at the relay, and at a consumer.

Each is one of the failure windows `payrelay.faults.FaultPoint` names, or what the stepped
broker does instead where the service has no fault point for it.
"""

from __future__ import annotations

from enum import StrEnum

from payrelay.faults import FaultPoint
from tests.model.broker import PublishMode


class RelayFault(StrEnum):
    NONE = "none"
    """Published, confirmed, marked sent."""
    BEFORE_PUBLISH = "before_publish"
    """Crash after the claim: the rows fall due again when the lease ends."""
    AFTER_PUBLISH = "after_publish"
    """Crash after the confirm, before mark_sent: the rows go out again, same ids."""
    CONFIRM_LOST = "confirm_lost"
    """The broker queued them, the relay never heard: a retry with backoff republishes."""
    BROKER_DOWN = "broker_down"
    """Nothing queued: a retry with backoff."""


class ConsumerFault(StrEnum):
    NONE = "none"
    BEFORE_COMMIT = "before_commit"
    """The consumer's transaction fails: nothing is written, the messages stay queued."""
    AFTER_COMMIT = "after_commit"
    """Committed, then the consumer dies before the ack: the redelivery meets the inbox."""


CONSUMER_FAULTS: dict[tuple[str, ConsumerFault], FaultPoint | None] = {
    ("orders", ConsumerFault.BEFORE_COMMIT): FaultPoint.ORDER_CONSUMER_BEFORE_COMMIT,
    ("orders", ConsumerFault.AFTER_COMMIT): FaultPoint.ORDER_CONSUMER_AFTER_COMMIT,
    ("payments", ConsumerFault.BEFORE_COMMIT): FaultPoint.OUTCOME_CONSUMER_BEFORE_COMMIT,
    # The outcome consumer has no fault point after its commit: the stepped broker loses
    # the ack instead, which is what such a crash comes to.
    ("payments", ConsumerFault.AFTER_COMMIT): None,
}
RELAY_FAULTS = {RelayFault.BEFORE_PUBLISH: FaultPoint.RELAY_BEFORE_PUBLISH,
                RelayFault.AFTER_PUBLISH: FaultPoint.RELAY_AFTER_PUBLISH}
PUBLISH_MODES = {RelayFault.CONFIRM_LOST: PublishMode.CONFIRM_LOST,
                 RelayFault.BROKER_DOWN: PublishMode.DOWN}
