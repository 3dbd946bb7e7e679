"""Consumers: the order side applies payment events, the payments side records outcomes.

Both follow one rule: the inbox row and the state change commit in the same transaction,
and the transport acks only after that commit. A redelivered message meets its inbox row
and changes nothing; on the order side it also sends the recorded outcome again, so an
answer lost on the way back heals by itself.

Each consumer has a module of its own (consume_payment_events.py, consume_order_outcomes.py);
decoding a delivery, or keeping an undecodable one as a dead letter, is shared
(consume_envelope.py). What becomes of a delivery a consumer fails on is the transport's
consumer side to decide (adapters/transports/consumer_failures.py).
"""

from __future__ import annotations

from payrelay.services.consume_envelope import ConsumerStats
from payrelay.services.consume_order_outcomes import OrderOutcomeConsumer
from payrelay.services.consume_payment_events import PaymentEventConsumer

__all__ = ["ConsumerStats", "OrderOutcomeConsumer", "PaymentEventConsumer"]
