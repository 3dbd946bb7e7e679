"""The processor: turn recorded notifications into payment state changes and outbox events.

For each claimed batch it fetches every distinct payment from the gateway (concurrently,
outside any transaction), then applies all snapshots in ONE transaction that also writes
the resulting events to the outbox and marks the notifications processed. A crash before
that commit leaves the notifications due again once their lease ends; a crash after it
leaves the events in the outbox for the relay. Gateway failures become a stored retry.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from payrelay.domain.errors import GatewayError
from payrelay.domain.events import Envelope, EventType
from payrelay.domain.payment import PaymentSnapshot, SnapshotVerdict, apply_snapshot
from payrelay.domain.retry import Backoff
from payrelay.faults import FaultPoint, Faults
from payrelay.messaging import PAYMENTS_EXCHANGE
from payrelay.ports import (
    ClaimedNotification,
    Clock,
    Gateway,
    NotificationQueue,
    PaymentsTx,
    PaymentsUnitOfWork,
)


@dataclass
class ProcessResult:
    claimed: int = 0
    applied: int = 0
    events: int = 0
    retried: int = 0
    verdicts: dict[SnapshotVerdict, int] = field(default_factory=dict)


class PaymentProcessor:
    def __init__(
        self,
        *,
        uow: PaymentsUnitOfWork,
        queue: NotificationQueue,
        gateway: Gateway,
        clock: Clock,
        faults: Faults,
        backoff: Backoff,
        rng: random.Random,
        batch_size: int = 200,
        lease: timedelta = timedelta(seconds=30),
        fetch_concurrency: int = 32,
        on_committed: asyncio.Event | None = None,
    ) -> None:
        self._uow = uow
        self._queue = queue
        self._gateway = gateway
        self._clock = clock
        self._faults = faults
        self._backoff = backoff
        self._rng = rng
        self._batch_size = batch_size
        self._lease = lease
        self._fetch_limit = asyncio.Semaphore(fetch_concurrency)
        self._on_committed = on_committed

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
        fetched = await asyncio.gather(*(self._fetch(pid) for pid in by_payment))
        snapshots: list[tuple[PaymentSnapshot, list[ClaimedNotification]]] = []
        failed: list[tuple[ClaimedNotification, str]] = []
        for (_pid, notifications), outcome in zip(by_payment.items(), fetched, strict=True):
            if isinstance(outcome, PaymentSnapshot):
                snapshots.append((outcome, notifications))
            else:
                failed.extend((n, outcome) for n in notifications)
        if snapshots:
            await self._apply(snapshots, result)
        await self._retry_later(failed)
        result.retried = len(failed)
        return result

    async def _fetch(self, payment_id: str) -> PaymentSnapshot | str:
        async with self._fetch_limit:
            try:
                return await self._gateway.fetch_payment(payment_id)
            except GatewayError as exc:
                return f"{type(exc).__name__}: {exc}"

    async def _apply(
        self,
        snapshots: list[tuple[PaymentSnapshot, list[ClaimedNotification]]],
        result: ProcessResult,
    ) -> None:
        async with self._uow.begin() as tx:
            now = self._clock()
            for snapshot, _ in snapshots:
                await self._apply_one(tx, snapshot, result)
            ids = [n.id for _, notifications in snapshots for n in notifications]
            await tx.notifications.mark_processed(ids, now=now)
            self._faults.check(FaultPoint.PROCESSOR_BEFORE_COMMIT)
        if self._on_committed is not None and result.events:
            self._on_committed.set()

    async def _apply_one(
        self, tx: PaymentsTx, snapshot: PaymentSnapshot, result: ProcessResult
    ) -> None:
        now = self._clock()
        current = await tx.payments.get(snapshot.payment_id)
        decision = apply_snapshot(current, snapshot)
        result.verdicts[decision.verdict] = result.verdicts.get(decision.verdict, 0) + 1
        if decision.payment is None:
            return
        payment = decision.payment
        await tx.payments.save(payment, now=now)
        result.applied += 1
        if not decision.status_changed:
            return
        await tx.timeline.record(
            f"payment.{snapshot.status.value}",
            at=now,
            order_id=snapshot.order_id,
            payment_id=snapshot.payment_id,
            detail=f"version {payment.version}; {snapshot.status_detail or ''}".strip("; "),
        )
        if snapshot.order_id is None:
            return  # not a payrelay checkout: stored, but no order to tell
        envelope = Envelope(
            type=EventType.for_payment_status(snapshot.status),
            occurred_at=now,
            order_id=snapshot.order_id,
            payment_id=snapshot.payment_id,
            provider=snapshot.provider,
            amount=snapshot.amount,
            payment_version=payment.version,
            correlation_id=f"{snapshot.provider}:{snapshot.payment_id}",
            message_id=uuid.uuid4(),
            approved_at=snapshot.date_approved,
        )
        await tx.outbox.add(envelope, exchange=PAYMENTS_EXCHANGE)
        result.events += 1

    async def _retry_later(self, failed: list[tuple[ClaimedNotification, str]]) -> None:
        if not failed:
            return
        now = self._clock()
        by_error: dict[str, list[tuple[int, datetime]]] = {}
        for notification, error in failed:
            due = self._backoff.next_attempt_at(now, notification.attempts + 1, self._rng)
            by_error.setdefault(error[:500], []).append((notification.id, due))
        for error, retries in by_error.items():
            await self._queue.schedule_retry(retries, error=error)
