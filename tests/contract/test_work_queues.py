"""The rules of `WorkQueue` (ports/queues.py), for each of its queues, on every backend.

A claim holds a row for its lease and no longer; `extend` keeps it; a failed try comes
due at its decision's `retry_at`, counting a failure only when the decision spends one;
a give-up makes the row dead, never claimed again, and listed for `payrelay dlq`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from payrelay.domain.retry import RetryDecision
from payrelay.messaging import PAYMENTS_EXCHANGE
from payrelay.ports import FailedTry, WorkQueue
from tests.contract.builders import envelope, notification, refund_request
from tests.contract.conftest import Storage

LEASE = timedelta(seconds=30)


async def add_notification(s: Storage, payment_id: str) -> None:
    assert await s.notification_log.record(notification(payment_id, at=s.clock()))


async def add_message(s: Storage, payment_id: str) -> None:
    async with s.payments.begin() as tx:
        await tx.outbox.add(envelope(payment_id), exchange=PAYMENTS_EXCHANGE)


async def add_refund(s: Storage, payment_id: str) -> None:
    async with s.payments.begin() as tx:
        assert await tx.refunds.request(refund_request(payment_id), hold=False, now=s.clock())


@dataclass(frozen=True)
class QueueCase:
    name: str
    queue: Callable[[Storage], WorkQueue[Any]]
    add: Callable[[Storage, str], Awaitable[None]]
    payment_id: Callable[[Any], str | None]
    failures: Callable[[Any], int] | None
    """Spent failures as a claim shows them; None where the port does not show them."""
    dead_id: str
    """How `payrelay dlq` names the dead row: a prefix, or the whole id."""

    def __str__(self) -> str:
        return self.name


CASES = [
    QueueCase("notifications", lambda s: s.notifications, add_notification,
              lambda c: c.resource_id, lambda c: c.failures, "notification-"),
    QueueCase("payments_outbox", lambda s: s.payments_relay, add_message,
              lambda m: m.payment_id, None, "payments-"),
    QueueCase("refunds", lambda s: s.refunds, add_refund,
              lambda r: r.payment_id, lambda r: r.failures, "refund-1000000001"),
]
pytestmark = pytest.mark.parametrize("case", CASES, ids=str)


async def claim(case: QueueCase, s: Storage, *, limit: int = 10) -> list[Any]:
    return await case.queue(s).claim_due(limit=limit, now=s.clock(), lease=LEASE)


async def test_a_claimed_row_is_not_claimed_again_until_its_lease_ends(
    case: QueueCase, storage: Storage
) -> None:
    await case.add(storage, "1000000001")
    assert [case.payment_id(w) for w in await claim(case, storage)] == ["1000000001"]
    storage.clock.advance(seconds=29)
    assert await claim(case, storage) == []
    storage.clock.advance(seconds=1)
    assert [case.payment_id(w) for w in await claim(case, storage)] == ["1000000001"]


async def test_claims_take_the_oldest_first_up_to_the_limit(
    case: QueueCase, storage: Storage
) -> None:
    for n in (1, 2, 3):
        await case.add(storage, f"100000000{n}")
        storage.clock.advance(seconds=1)
    first = await claim(case, storage, limit=2)
    assert [case.payment_id(w) for w in first] == ["1000000001", "1000000002"]
    assert [case.payment_id(w) for w in await claim(case, storage)] == ["1000000003"]


async def test_extend_keeps_the_claim_until_the_new_time(
    case: QueueCase, storage: Storage
) -> None:
    await case.add(storage, "1000000001")
    claimed = await claim(case, storage)
    await case.queue(storage).extend(claimed, until=storage.clock() + timedelta(seconds=90))
    storage.clock.advance(seconds=60)
    assert await claim(case, storage) == []
    storage.clock.advance(seconds=30)
    assert len(await claim(case, storage)) == 1


async def test_a_retry_comes_due_at_retry_at_and_counts_a_try(
    case: QueueCase, storage: Storage
) -> None:
    await case.add(storage, "1000000001")
    (work,) = await claim(case, storage)
    retry_at = storage.clock() + timedelta(seconds=45)
    decision = RetryDecision(retry_at, spends_attempt=False)
    await case.queue(storage).record_failures(
        [FailedTry(work, "GatewayUnavailable: down", decision)], now=storage.clock()
    )
    storage.clock.advance(seconds=44)  # the lease is over, the retry is not due yet
    assert await claim(case, storage) == []
    storage.clock.advance(seconds=1)
    (again,) = await claim(case, storage)
    assert again.attempts == 1
    if case.failures is not None:
        assert case.failures(again) == 0  # an outage spends nothing


async def test_a_failure_that_spends_an_attempt_is_counted(
    case: QueueCase, storage: Storage
) -> None:
    if case.failures is None:
        pytest.skip(f"{case.name}: the port does not show spent failures")
    await case.add(storage, "1000000001")
    (work,) = await claim(case, storage)
    decision = RetryDecision(storage.clock() + timedelta(seconds=5), spends_attempt=True)
    await case.queue(storage).record_failures([FailedTry(work, "boom", decision)],
                                              now=storage.clock())
    storage.clock.advance(seconds=5)
    (again,) = await claim(case, storage)
    assert case.failures(again) == 1
    assert again.attempts == 1


async def test_a_give_up_makes_the_row_dead_and_never_claimed(
    case: QueueCase, storage: Storage
) -> None:
    await case.add(storage, "1000000001")
    (work,) = await claim(case, storage)
    decision = RetryDecision(None, True, "permanent: failed 3 times")
    await case.queue(storage).record_failures([FailedTry(work, "MalformedResource: x",
                                                         decision)], now=storage.clock())
    storage.clock.advance(days=30)
    assert await claim(case, storage) == []
    dead = [d for d in await storage.dead_letters.recent() if d.id.startswith(case.dead_id)]
    assert len(dead) == 1
    assert dead[0].reason == "permanent: failed 3 times"
    assert dead[0].error is not None and "MalformedResource: x" in dead[0].error


async def test_failures_of_rows_no_longer_claimed_change_nothing(
    case: QueueCase, storage: Storage
) -> None:
    """A give-up recorded twice (two workers, one lease apart) writes one dead row."""
    await case.add(storage, "1000000001")
    (work,) = await claim(case, storage)
    decision = RetryDecision(None, True, "permanent: failed 3 times")
    for _ in range(2):
        await case.queue(storage).record_failures([FailedTry(work, "x", decision)],
                                                  now=storage.clock())
    dead = [d for d in await storage.dead_letters.recent() if d.id.startswith(case.dead_id)]
    assert len(dead) == 1
