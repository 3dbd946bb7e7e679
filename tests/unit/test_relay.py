"""The relay only publishes and marks sent: whatever is not confirmed is retried, never dead."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from payrelay.adapters.transports.local import LocalTransport
from payrelay.domain.errors import TransportUnavailable
from payrelay.domain.retry import RetryPolicy, RetrySchedule
from payrelay.faults import Faults
from payrelay.messaging import ORDER_SIDE_SUBSCRIPTION
from payrelay.ports import Delivery, FailedTry, OutboundMessage, PublishResult
from payrelay.services.relay import OutboxRelay

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Outbox:
    """The relay's store, in memory: every row is due whenever it is pending."""

    pending: dict[uuid.UUID, OutboundMessage] = field(default_factory=dict)
    sent: list[uuid.UUID] = field(default_factory=list)
    failures: list[FailedTry[OutboundMessage]] = field(default_factory=list)

    async def claim_due(
        self, *, limit: int, now: datetime, lease: timedelta
    ) -> list[OutboundMessage]:
        return list(self.pending.values())[:limit]

    async def extend(self, work: Sequence[OutboundMessage], *, until: datetime) -> None:
        return None

    async def mark_sent(
        self, message_ids: Sequence[uuid.UUID], *, now: datetime,
        timeline: Sequence[object] = (),
    ) -> None:
        for message_id in message_ids:
            del self.pending[message_id]
            self.sent.append(message_id)

    async def record_failures(
        self, failed: Sequence[FailedTry[OutboundMessage]], *, now: datetime
    ) -> None:
        self.failures.extend(failed)
        for f in failed:
            self.pending[f.work.message_id] = replace(f.work, attempts=f.work.attempts + 1)

    async def pending_count(self) -> int:
        return len(self.pending)


def message(n: int) -> OutboundMessage:
    return OutboundMessage(
        message_id=uuid.uuid4(), exchange=ORDER_SIDE_SUBSCRIPTION.exchange,
        routing_key="payment.approved", correlation_id=f"c-{n}", body=b"{}", created_at=NOW,
    )


class HalfTransport:
    """Confirms the first message of each batch; raises TransportUnavailable when `down`."""

    down = False

    async def publish(self, messages: Sequence[OutboundMessage]) -> PublishResult:
        if self.down:
            raise TransportUnavailable("broker down")
        return PublishResult({messages[0].message_id} if messages else set())

    async def subscribe(self, *args: object) -> None: ...
    async def subscribe_dead_letters(self, *args: object) -> None: ...
    async def check(self) -> None: ...
    async def close(self) -> None: ...


def relay(outbox: Outbox, transport: object) -> OutboxRelay:
    return OutboxRelay(store=outbox, transport=transport,  # type: ignore[arg-type]
                       clock=lambda: NOW, faults=Faults(), retry=RetryPolicy(),
                       rng=random.Random(1))


async def test_unconfirmed_messages_are_retried_as_transport_trouble_and_never_dead() -> None:
    outbox, transport = Outbox(), HalfTransport()
    first, second = message(1), message(2)
    outbox.pending = {first.message_id: first, second.message_id: second}

    result = await relay(outbox, transport).run_once()

    assert (result.claimed, result.confirmed, result.retried) == (2, 1, 1)
    assert outbox.sent == [first.message_id]
    transport.down = True
    for _ in range(20):  # far past any schedule: an unconfirmed message is never given up
        await relay(outbox, transport).run_once()
    assert outbox.pending.keys() == {second.message_id}
    assert all(f.decision.retries and not f.decision.spends_attempt for f in outbox.failures)
    assert outbox.failures[-1].error == "transport unavailable: broker down"


async def test_a_message_its_local_consumer_gave_up_on_is_sent_once_its_dead_letter_is_stored(
) -> None:
    outbox = Outbox()
    clock = [NOW]
    transport = LocalTransport(schedule=RetrySchedule((1.0,)), clock=lambda: clock[0])
    dead: list[Delivery] = []

    async def failing(batch: Sequence[Delivery]) -> None:
        raise RuntimeError("poison")

    async def store(batch: Sequence[Delivery]) -> None:
        dead.extend(batch)

    await transport.subscribe(ORDER_SIDE_SUBSCRIPTION, failing)
    await transport.subscribe_dead_letters(ORDER_SIDE_SUBSCRIPTION, store)
    poison = message(1)
    outbox.pending = {poison.message_id: poison}

    await relay(outbox, transport).run_once()
    assert outbox.sent == [] and dead == []  # its consumer waits for the retry
    clock[0] += timedelta(seconds=1)
    await relay(outbox, transport).run_once()

    assert outbox.sent == [poison.message_id]
    assert [d.message_id for d in dead] == [str(poison.message_id)]
    assert not any(f.decision.spends_attempt for f in outbox.failures)
