"""Compensation: refund approved payments the order side could not use.

The intent is stored before the gateway is called (one row per payment, so no payment is
ever refunded twice by payrelay), every call carries the same idempotency key (so the gateway
refunds once however often it is asked), and the gateway is asked first whether a refund
already covers the amount (so an earlier attempt whose answer was lost is not repeated).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import timedelta

from payrelay.domain.errors import GatewayError, GatewayRejected, InjectedFault
from payrelay.domain.refund import idempotency_key
from payrelay.domain.retry import FailureKind, RetryPolicy, decide_retry, failure_kind
from payrelay.failure_log import FailureLog
from payrelay.faults import FaultPoint, Faults
from payrelay.ports import (
    Clock,
    FailedTry,
    Gateway,
    NotificationRecord,
    PaymentsUnitOfWork,
    RefundQueue,
    RefundRequest,
)


@dataclass
class RefundResult:
    claimed: int = 0
    refunded: int = 0
    already_covered: int = 0
    retried: int = 0
    held: int = 0
    dead: int = 0


class Refunder:
    def __init__(
        self,
        *,
        queue: RefundQueue,
        uow: PaymentsUnitOfWork,
        gateway: Gateway,
        clock: Clock,
        faults: Faults,
        retry: RetryPolicy,
        rng: random.Random,
        failure_log: FailureLog | None = None,
        batch_size: int = 50,
        lease: timedelta = timedelta(seconds=30),
    ) -> None:
        self._queue = queue
        self._uow = uow
        self._gateway = gateway
        self._clock = clock
        self._faults = faults
        self._retry = retry
        self._rng = rng
        self._failure_log = failure_log or FailureLog(clock)
        self._batch_size = batch_size
        self._lease = lease

    async def run_once(self) -> RefundResult:
        claimed = await self._queue.claim_due(
            limit=self._batch_size, now=self._clock(), lease=self._lease
        )
        result = RefundResult(claimed=len(claimed))
        await asyncio.gather(*(self._refund(r, result) for r in claimed))
        return result

    async def _refund(self, refund: RefundRequest, result: RefundResult) -> None:
        try:
            payment = await self._gateway.fetch_payment(refund.payment_id)
            if payment.amount_refunded.amount >= refund.amount.amount:
                await self._succeeded(refund, gateway_refund_id=None)
                result.already_covered += 1
                return
            refund_id = await self._gateway.refund(
                refund.payment_id,
                amount=refund.amount,
                idempotency_key=idempotency_key(refund.provider, refund.payment_id),
            )
            self._faults.check(FaultPoint.REFUND_ANSWER_LOST)
        except GatewayRejected as exc:
            if exc.status_code in (401, 403, 404):  # our credentials, or a glitch: retry a bit
                await self._failed(refund, exc, failure_kind(exc), result)
                return
            # A definite no about this payment (it cannot be refunded any more): asking
            # again will not change it, so a person decides.
            error = f"gateway refused: {exc}"
            await self._hold(refund, error)
            self._failure_log.event("refund held", order_id=refund.order_id,
                                    payment_id=refund.payment_id, detail=error)
            result.held += 1
            return
        except (GatewayError, InjectedFault) as exc:
            # A timeout may have refunded or not: the next attempt asks the gateway first,
            # and repeats the same idempotency key if it must call again. An injected
            # fault here stands for exactly that lost answer.
            kind = FailureKind.UNAVAILABLE if isinstance(exc, InjectedFault) else failure_kind(exc)
            await self._failed(refund, exc, kind, result)
            return
        await self._succeeded(refund, gateway_refund_id=refund_id)
        result.refunded += 1

    async def _succeeded(self, refund: RefundRequest, *, gateway_refund_id: str | None) -> None:
        now = self._clock()
        async with self._uow.begin() as tx:
            await tx.refunds.mark_succeeded(refund, gateway_refund_id=gateway_refund_id, now=now)
            # The payment changed at the gateway: fetch it again, as if notified, so its
            # status here follows even if the gateway's own notification is lost.
            await tx.notifications.record(NotificationRecord(
                dedupe_key=f"{refund.provider}:payment:{refund.payment_id}:refunded",
                provider=refund.provider, topic="payment", action="refunder",
                resource_id=refund.payment_id, request_id=None, received_at=now,
                ignored=False,
            ))
            await tx.timeline.record(
                "refund.succeeded", at=now, order_id=refund.order_id,
                payment_id=refund.payment_id, detail=f"{refund.amount} ({refund.reason})",
            )

    async def _hold(self, refund: RefundRequest, error: str) -> None:
        now = self._clock()
        async with self._uow.begin() as tx:
            await tx.refunds.hold(refund, error=error, now=now)
            await tx.timeline.record(
                "refund.held", at=now, order_id=refund.order_id,
                payment_id=refund.payment_id, detail=error[:200],
            )

    async def _failed(
        self, refund: RefundRequest, exc: Exception, kind: FailureKind, result: RefundResult
    ) -> None:
        now = self._clock()
        decision = decide_retry(
            kind, tries=refund.attempts, failures=refund.failures,
            age=now - (refund.created_at or now), now=now, policy=self._retry, rng=self._rng,
        )
        error = f"{type(exc).__name__}: {exc}"
        self._failure_log.failed("refunder", kind=kind, order_id=refund.order_id,
                                 payment_id=refund.payment_id, error=error, decision=decision)
        await self._queue.record_failures([FailedTry(refund, error, decision)], now=now)
        if decision.retries:
            result.retried += 1
        else:
            result.dead += 1
