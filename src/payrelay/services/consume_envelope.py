"""What both consumers do before their own work: decode a delivery's envelope (or keep an
undecodable one as a dead letter), and count and tell what a committed batch did."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from payrelay.domain.errors import InvalidEnvelope
from payrelay.domain.events import Envelope
from payrelay.failure_log import FailureLog
from payrelay.ports import DeadLetters, Delivery, Subscription
from payrelay.ports.metrics import Metrics

__all__ = ["ConsumerStats", "decode_batch", "decode_envelope", "tell"]

log = logging.getLogger("payrelay.events")


@dataclass
class ConsumerStats:
    consumed: int = 0
    duplicates: int = 0
    stale: int = 0
    dead_lettered: int = 0
    news: list[tuple[str, Envelope | None, str]] = field(default_factory=list)
    """(step, the envelope it is about, detail) for a person, logged once the batch commits."""

    def add(self, other: ConsumerStats) -> None:
        self.consumed += other.consumed
        self.duplicates += other.duplicates
        self.stale += other.stale
        self.dead_lettered += other.dead_lettered


def tell(failure_log: FailureLog, stats: ConsumerStats, *, metrics: Metrics | None = None,
         consumer: str = "") -> None:
    """Log what a committed batch did that a person should hear of; count its messages."""
    for step, envelope, detail in stats.news:
        if envelope is None:
            failure_log.event(step, order_id=None, payment_id=None, detail=detail)
            continue
        failure_log.event(step, order_id=envelope.order_id, payment_id=envelope.payment_id,
                          detail=detail, correlation_id=envelope.correlation_id)
    if metrics is None:
        return
    applied = stats.consumed - stats.duplicates - stats.stale
    for outcome, count in (("applied", applied), ("duplicate", stats.duplicates),
                           ("stale", stats.stale), ("dead_lettered", stats.dead_lettered)):
        metrics.consumed(consumer=consumer, outcome=outcome, count=count)


def tell_decided(replies: Sequence[Envelope]) -> None:
    """One INFO line per outcome the order side decided: order paid, or payment rejected."""
    for reply in replies:
        fields = {"outcome": reply.type.value, "order_id": reply.order_id,
                  "payment_id": reply.payment_id, "correlation_id": reply.correlation_id,
                  "amount": str(reply.amount)}
        if reply.reason is None:
            log.info("order paid", extra=fields)
        else:
            log.info("payment rejected: %s", reply.reason.value,
                     extra={**fields, "reason": reply.reason.value})


async def decode_envelope(
    delivery: Delivery,
    dead_letters: DeadLetters,
    *,
    subscription: Subscription,
    prefix: str,
    now: datetime,
    stats: ConsumerStats,
) -> Envelope | None:
    """The envelope, or None after storing an undecodable message as a dead letter.

    A body that cannot be decoded will never decode: retrying it would only block the
    messages behind it, so it is kept with its reason instead.
    """
    try:
        envelope = Envelope.from_json(delivery.body)
        if not envelope.type.value.startswith(prefix):
            raise InvalidEnvelope(f"unexpected event type {envelope.type.value}")
    except InvalidEnvelope as exc:
        await dead_letters.add(
            delivery,
            subscription=subscription,
            reason="permanent: undecodable message",
            error=str(exc),
            at=now,
        )
        stats.news.append(("dead letter created", None, (
            f"message_id={delivery.message_id} routing_key={delivery.routing_key} "
            f"reason='permanent: undecodable message' error={str(exc)[:200]!r}")))
        return None
    return envelope


async def decode_batch(
    batch: Sequence[Delivery],
    dead_letters: DeadLetters,
    *,
    subscription: Subscription,
    prefix: str,
    now: datetime,
    stats: ConsumerStats,
) -> list[Envelope]:
    """The batch's envelopes in arrival order; the undecodable ones kept as dead letters."""
    envelopes = []
    for delivery in batch:
        envelope = await decode_envelope(delivery, dead_letters, subscription=subscription,
                                         prefix=prefix, now=now, stats=stats)
        if envelope is None:
            stats.dead_lettered += 1
        else:
            envelopes.append(envelope)
    return envelopes
