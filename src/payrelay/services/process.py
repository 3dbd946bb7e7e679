"""The processor: turn recorded notifications into payment state changes and outbox events.

For each claimed batch it fetches every distinct payment from the gateway (concurrently,
outside any transaction), then applies all snapshots in ONE transaction that also writes
the resulting events to the outbox and marks the notifications processed. A crash before
that commit leaves the notifications due again once their lease ends; a crash after it
leaves the events in the outbox for the relay. A gateway failure becomes a stored retry
or, once `decide_retry` gives up (a payment that stays unknown, a resource payrelay cannot
read), a dead notification with its reason. A payment another processor stored first
(ConcurrentUpdate) is a stored retry too: it is fetched again.

While a batch is in hand a heartbeat renews its claims (claims.py): a processor that dies
gives them back within one short lease, and a slow gateway does not let a second processor
take them meanwhile.

One payment is fetched at most once per `fetch_interval`, whatever arrives about it: a
notification claimed inside the interval after a fetch of its payment is postponed to the
interval's end (as an IPN waits for its window's end), not dropped, because it may announce
a change made after that fetch began.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from payrelay.domain.errors import ConcurrentUpdate, GatewayError, PayrelayError
from payrelay.domain.events import Envelope, EventType
from payrelay.domain.payment import (
    PaymentSnapshot,
    SnapshotResult,
    SnapshotVerdict,
    apply_snapshot,
)
from payrelay.domain.retry import RetryPolicy, decide_retry, failure_kind
from payrelay.failure_log import FailureLog
from payrelay.faults import FaultPoint, Faults
from payrelay.messaging import PAYMENTS_EXCHANGE
from payrelay.ports import (
    NO_TRACING,
    ClaimedNotification,
    Clock,
    FailedTry,
    Gateway,
    NotificationQueue,
    PaymentSave,
    PaymentsTx,
    PaymentsUnitOfWork,
    SpanName,
    TimelineEntry,
    Tracing,
)
from payrelay.services import timeline_steps
from payrelay.services.claims import LEASE, holding
from payrelay.services.spans import SpanStart, batch_spans


@dataclass
class ProcessResult:
    claimed: int = 0
    applied: int = 0
    events: int = 0
    retried: int = 0
    dead: int = 0
    verdicts: dict[SnapshotVerdict, int] = field(default_factory=dict)


@dataclass
class _Changes:
    """What a batch's stored payments cause: timeline rows and events, written together."""

    now: datetime
    timeline: list[TimelineEntry] = field(default_factory=list)
    events: list[Envelope] = field(default_factory=list)

    def add(self, snapshot: PaymentSnapshot, decision: SnapshotResult,
            result: ProcessResult) -> None:
        payment = decision.payment
        if payment is not None:
            result.applied += 1
        result.verdicts[decision.verdict] = result.verdicts.get(decision.verdict, 0) + 1
        self.timeline.append(timeline_steps.fetched(snapshot, at=self.now))
        if payment is None or not decision.status_changed:
            return
        self.timeline.append(TimelineEntry(
            f"payment.{snapshot.status.value}",
            at=self.now,
            order_id=snapshot.order_id,
            payment_id=snapshot.payment_id,
            detail=f"version {payment.version}; {snapshot.status_detail or ''}".strip("; "),
        ))
        if snapshot.order_id is None:
            return  # not a payrelay checkout: stored, but no order to tell
        self.events.append(Envelope(
            type=EventType.for_payment_status(snapshot.status),
            occurred_at=self.now,
            order_id=snapshot.order_id,
            payment_id=snapshot.payment_id,
            provider=snapshot.provider,
            amount=snapshot.amount,
            payment_version=payment.version,
            correlation_id=f"{snapshot.provider}:{snapshot.payment_id}",
            message_id=uuid.uuid4(),
            approved_at=snapshot.date_approved,
            inexact_amount=snapshot.inexact_amount,  # the order side holds such a payment
        ))
        result.events += 1

    async def write(self, tx: PaymentsTx) -> None:
        await tx.timeline.record_many(self.timeline)
        await tx.outbox.add_many(self.events, exchange=PAYMENTS_EXCHANGE)


class PaymentProcessor:
    def __init__(
        self,
        *,
        uow: PaymentsUnitOfWork,
        queue: NotificationQueue,
        gateway: Gateway,
        clock: Clock,
        faults: Faults,
        retry: RetryPolicy,
        rng: random.Random,
        failure_log: FailureLog | None = None,
        batch_size: int = 200,
        lease: timedelta = LEASE,
        fetch_concurrency: int = 32,
        fetch_interval: timedelta = timedelta(0),
        on_committed: asyncio.Event | None = None,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        self._uow = uow
        self._queue = queue
        self._gateway = gateway
        self._clock = clock
        self._faults = faults
        self._retry = retry
        self._rng = rng
        self._failure_log = failure_log or FailureLog(clock)
        self._batch_size = batch_size
        self._lease = lease
        self._fetch_limit = asyncio.Semaphore(fetch_concurrency)
        self._fetch_interval = fetch_interval
        self._last_fetch: dict[str, datetime] = {}  # payment id -> when its fetch began
        self._on_committed = on_committed
        self._tracing = tracing

    async def run_once(self) -> ProcessResult:
        claimed = await self._queue.claim_due(
            limit=self._batch_size, now=self._clock(), lease=self._lease
        )
        result = ProcessResult(claimed=len(claimed))
        if not claimed:
            return result
        by_payment: dict[str, list[ClaimedNotification]] = {}
        for notification in claimed:
            by_payment.setdefault(notification.resource_id, []).append(notification)
        await self._postpone_recently_fetched(by_payment)
        in_hand = [n for notifications in by_payment.values() for n in notifications]
        provider = self._gateway.provider
        spans = (SpanStart(f"{provider}:{pid}", {"payrelay.payment_id": pid}) for pid in by_payment)
        async with holding(self._queue, in_hand, lease=self._lease, clock=self._clock):
            with batch_spans(self._tracing, SpanName.PROCESSING, spans):
                failed = await self._fetch_and_apply(by_payment, result)
        await self._retry_later(failed, result)  # after the heartbeat: see claims.py
        return result

    async def _fetch_and_apply(
        self, by_payment: dict[str, list[ClaimedNotification]], result: ProcessResult
    ) -> list[tuple[ClaimedNotification, PayrelayError]]:
        """Fetch each payment, apply what was fetched; returns what failed, to retry."""
        fetched = await asyncio.gather(*(self._fetch(pid) for pid in by_payment))
        snapshots: list[tuple[PaymentSnapshot, list[ClaimedNotification]]] = []
        failed: list[tuple[ClaimedNotification, PayrelayError]] = []
        for (_pid, notifications), outcome in zip(by_payment.items(), fetched, strict=True):
            if isinstance(outcome, PaymentSnapshot):
                snapshots.append((outcome, notifications))
            else:
                failed.extend((n, outcome) for n in notifications)
        if snapshots:
            failed.extend(await self._apply(snapshots, result))
        return failed

    async def _postpone_recently_fetched(
        self, by_payment: dict[str, list[ClaimedNotification]]
    ) -> None:
        """Take out of `by_payment` what was fetched within the interval; postpone it."""
        now = self._clock()
        horizon = now - self._fetch_interval
        self._last_fetch = {p: at for p, at in self._last_fetch.items() if at > horizon}
        waiting: dict[datetime, list[int]] = {}
        for payment_id in list(by_payment):
            last = self._last_fetch.get(payment_id)
            if last is None:
                self._last_fetch[payment_id] = now  # this batch fetches it, now
                continue
            ids = [n.id for n in by_payment.pop(payment_id)]
            waiting.setdefault(last + self._fetch_interval, []).extend(ids)
        for until, ids in waiting.items():
            await self._queue.postpone(ids, until=until)

    async def _fetch(self, payment_id: str) -> PaymentSnapshot | GatewayError:
        async with self._fetch_limit:
            try:
                return await self._gateway.fetch_payment(payment_id)
            except GatewayError as exc:
                return exc

    async def _apply(
        self,
        snapshots: list[tuple[PaymentSnapshot, list[ClaimedNotification]]],
        result: ProcessResult,
    ) -> list[tuple[ClaimedNotification, PayrelayError]]:
        """Apply the batch in one transaction, a few statements in all; returns the
        notifications whose payment another processor stored first, to fetch again."""
        async with self._uow.begin() as tx:
            now = self._clock()
            current = await tx.payments.get_many([s.payment_id for s, _ in snapshots])
            decisions = [(snapshot, notifications,
                          apply_snapshot(current.get(snapshot.payment_id), snapshot))
                         for snapshot, notifications in snapshots]
            lost_ids = await tx.payments.save_many([
                PaymentSave(d.payment, current[s.payment_id].version
                            if s.payment_id in current else None)
                for s, _, d in decisions if d.payment is not None], now=now)
            lost: list[tuple[ClaimedNotification, PayrelayError]] = []
            done: list[int] = []
            changes = _Changes(now)
            for snapshot, notifications, decision in decisions:
                if snapshot.payment_id in lost_ids:
                    # Another processor stored this payment first and nothing of it was
                    # written here: fetch it again later, like a failed fetch.
                    race = ConcurrentUpdate(f"payment {snapshot.payment_id} moved on")
                    lost.extend((n, race) for n in notifications)
                    continue
                changes.add(snapshot, decision, result)
                done.extend(n.id for n in notifications)
            await changes.write(tx)
            await tx.notifications.mark_processed(done, now=now)
            self._faults.check(FaultPoint.PROCESSOR_BEFORE_COMMIT)
        if self._on_committed is not None and result.events:
            self._on_committed.set()
        return lost

    async def _retry_later(
        self, failed: list[tuple[ClaimedNotification, PayrelayError]], result: ProcessResult
    ) -> None:
        if not failed:
            return
        orders = await self._orders_of({n.resource_id for n, _ in failed})
        now = self._clock()
        tries: list[FailedTry[ClaimedNotification]] = []
        steps: list[TimelineEntry] = []
        for notification, exc in failed:
            kind = failure_kind(exc)
            decision = decide_retry(
                kind,
                tries=notification.attempts,
                failures=notification.failures,
                age=now - (notification.received_at or now),
                now=now,
                policy=self._retry,
                rng=self._rng,
            )
            error = f"{type(exc).__name__}: {exc}"[:500]
            tries.append(FailedTry(notification, error, decision))
            payment_id = notification.resource_id
            steps.append(timeline_steps.fetch_failed(
                notification, exc, error=error, decision=decision, at=now))
            self._failure_log.failed(  # the order: stored, else the checkout URL's hint
                "processor", kind=kind, payment_id=payment_id,
                order_id=orders.get(payment_id) or notification.order_hint,
                error=error, decision=decision,
                correlation_id=f"{self._gateway.provider}:{payment_id}",
            )
        await self._queue.record_failures(tries, now=now)
        async with self._uow.begin() as tx:  # the queue commits alone; its rows right after
            await tx.timeline.record_many(steps)
        result.dead = sum(1 for t in tries if not t.decision.retries)
        result.retried = len(tries) - result.dead

    async def _orders_of(self, payment_ids: set[str]) -> dict[str, str]:
        """The orders of the payments stored before, for the failure lines (best effort:
        a database that cannot answer leaves them out; the retry is stored regardless)."""
        try:
            async with self._uow.begin() as tx:
                stored = await tx.payments.get_many(sorted(payment_ids))
        except PayrelayError:
            return {}
        return {p: pay.snapshot.order_id for p, pay in stored.items() if pay.snapshot.order_id}
