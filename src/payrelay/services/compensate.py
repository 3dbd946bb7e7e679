"""Compensation: refund approved payments the order side could not use.

The intent is stored before the gateway is called (one row per payment, so no payment is
ever refunded twice by payrelay), every call carries the same idempotency key (so the gateway
refunds once however often it is asked), and the gateway is asked first whether a refund
already covers the amount (so an earlier attempt whose answer was lost is not repeated).
A batch's gateway calls run under a heartbeat (claims.py); what each answer means for its
refund is written once they are all back.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from payrelay.domain.errors import GatewayError, GatewayRejected, InjectedFault
from payrelay.domain.refund import idempotency_key
from payrelay.domain.retry import FailureKind, RetryPolicy, decide_retry, failure_kind
from payrelay.failure_log import FailureLog, payment_fields
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
from payrelay.ports.metrics import Metrics, NoMetrics
from payrelay.services import timeline_steps
from payrelay.services.claims import LEASE, holding

log = logging.getLogger("payrelay.events")


@dataclass(frozen=True, slots=True)
class _Refunded:
    gateway_refund_id: str | None
    already_covered: bool
    """A refund at the gateway already covered the amount: none was made."""


@dataclass(frozen=True, slots=True)
class _Held:
    error: str


@dataclass(frozen=True, slots=True)
class _Failed:
    exc: Exception
    kind: FailureKind


_Answer = _Refunded | _Held | _Failed


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
        lease: timedelta = LEASE,
        metrics: Metrics | None = None,
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
        self._metrics = metrics or NoMetrics()

    async def run_once(self) -> RefundResult:
        claimed = await self._queue.claim_due(
            limit=self._batch_size, now=self._clock(), lease=self._lease
        )
        result = RefundResult(claimed=len(claimed))
        async with holding(self._queue, claimed, lease=self._lease, clock=self._clock):
            answers = await asyncio.gather(*(self._ask_gateway(r) for r in claimed))
        # Written after the heartbeat stopped, so it cannot move a stored retry (claims.py).
        for refund, answer in zip(claimed, answers, strict=True):
            await self._record(refund, answer, result)
        return result

    async def _ask_gateway(self, refund: RefundRequest) -> _Answer:
        """Refund it unless a refund already covers it; what the gateway said, or why not."""
        try:
            payment = await self._gateway.fetch_payment(refund.payment_id)
            if payment.amount_refunded.amount >= refund.amount.amount:
                return _Refunded(gateway_refund_id=None, already_covered=True)
            refund_id = await self._gateway.refund(
                refund.payment_id,
                amount=refund.amount,
                idempotency_key=idempotency_key(refund.provider, refund.payment_id),
            )
            self._faults.check(FaultPoint.REFUND_ANSWER_LOST)
        except GatewayRejected as exc:
            if exc.status_code in (401, 403, 404):  # our credentials, or a glitch: retry a bit
                return _Failed(exc, failure_kind(exc))
            # A definite no about this payment (it cannot be refunded any more): asking
            # again will not change it, so a person decides.
            return _Held(f"gateway refused: {exc}")
        except (GatewayError, InjectedFault) as exc:
            # A timeout may have refunded or not: the next attempt asks the gateway first,
            # and repeats the same idempotency key if it must call again. An injected
            # fault here stands for exactly that lost answer.
            kind = FailureKind.UNAVAILABLE if isinstance(exc, InjectedFault) else failure_kind(exc)
            return _Failed(exc, kind)
        return _Refunded(gateway_refund_id=refund_id, already_covered=False)

    async def _record(self, refund: RefundRequest, answer: _Answer, result: RefundResult) -> None:
        if isinstance(answer, _Refunded):
            await self._succeeded(refund, gateway_refund_id=answer.gateway_refund_id)
            covered = answer.already_covered
            self._metrics.refund_finished(result="already_covered" if covered else "refunded")
            log.info("refund issued" if not covered else "refund found already issued",
                     extra={**_ids(refund), "amount": str(refund.amount),
                            "reason": refund.reason, "gateway_refund_id": answer.gateway_refund_id})
            if covered:
                result.already_covered += 1
            else:
                result.refunded += 1
        elif isinstance(answer, _Held):
            await self._hold(refund, answer.error)
            self._metrics.refund_finished(result="held")
            self._failure_log.event("refund held", order_id=refund.order_id,
                                    payment_id=refund.payment_id, detail=answer.error,
                                    correlation_id=_ids(refund)["correlation_id"])
            result.held += 1
        else:
            await self._failed(refund, answer.exc, answer.kind, result)

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
                                 payment_id=refund.payment_id, error=error, decision=decision,
                                 correlation_id=_ids(refund)["correlation_id"])
        await self._queue.record_failures([FailedTry(refund, error, decision)], now=now)
        self._metrics.refund_finished(result="retried" if decision.retries else "dead")
        async with self._uow.begin() as tx:
            await tx.timeline.record_many([timeline_steps.refund_failed(
                refund, error=error, decision=decision, at=now)])
        if decision.retries:
            result.retried += 1
        else:
            result.dead += 1


def _ids(refund: RefundRequest) -> dict[str, str | None]:
    return payment_fields(refund.order_id, refund.payment_id,
                          f"{refund.provider}:{refund.payment_id}")
