"""What both consumers do before their own work: decode a delivery's envelope (or keep an
undecodable one as a dead letter), and count and tell what a committed batch did."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from payrelay.domain.errors import InvalidEnvelope
from payrelay.domain.events import Envelope
from payrelay.failure_log import FailureLog
from payrelay.ports import DeadLetters, Delivery, Subscription

__all__ = ["ConsumerStats", "decode_batch", "decode_envelope", "tell"]


@dataclass
class ConsumerStats:
    consumed: int = 0
    duplicates: int = 0
    stale: int = 0
    dead_lettered: int = 0
    news: list[tuple[str, str | None, str | None, str]] = field(default_factory=list)
    """(step, order id, payment id, detail) for a person, logged once the batch commits."""

    def add(self, other: ConsumerStats) -> None:
        self.consumed += other.consumed
        self.duplicates += other.duplicates
        self.stale += other.stale
        self.dead_lettered += other.dead_lettered


def tell(failure_log: FailureLog, stats: ConsumerStats) -> None:
    """Log what a committed batch did that a person should hear of."""
    for step, order_id, payment_id, detail in stats.news:
        failure_log.event(step, order_id=order_id, payment_id=payment_id, detail=detail)


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
        stats.news.append(("dead letter", None, None, (
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
