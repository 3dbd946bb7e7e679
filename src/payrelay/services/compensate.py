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
from payrelay.domain.retry import Backoff
from payrelay.faults import FaultPoint, Faults
from payrelay.ports import Clock, Gateway, RefundQueue, RefundRequest


@dataclass
class RefundResult:
    claimed: int = 0
    refunded: int = 0
    already_covered: int = 0
    retried: int = 0
    held: int = 0


class Refunder:
    def __init__(
        self,
        *,
        queue: RefundQueue,
        gateway: Gateway,
        clock: Clock,
        faults: Faults,
        backoff: Backoff,
        rng: random.Random,
        batch_size: int = 50,
        lease: timedelta = timedelta(seconds=30),
    ) -> None:
        self._queue = queue
        self._gateway = gateway
        self._clock = clock
        self._faults = faults
        self._backoff = backoff
        self._rng = rng
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
                await self._queue.mark_succeeded(refund, gateway_refund_id=None, now=self._clock())
                result.already_covered += 1
                return
            refund_id = await self._gateway.refund(
                refund.payment_id,
                amount=refund.amount,
                idempotency_key=idempotency_key(refund.provider, refund.payment_id),
            )
            self._faults.check(FaultPoint.REFUND_ANSWER_LOST)
        except GatewayRejected as exc:
            if exc.status_code in (401, 403):  # our credentials: fixable, so keep trying
                await self._retry(refund, exc)
                result.retried += 1
                return
            # A definite no about this payment (it cannot be refunded any more): asking
            # again will not change it, so a person decides.
            await self._queue.hold(refund, error=f"gateway refused: {exc}", now=self._clock())
            result.held += 1
            return
        except (GatewayError, InjectedFault) as exc:
            # A timeout may have refunded or not: the next attempt asks the gateway first,
            # and repeats the same idempotency key if it must call again.
            await self._retry(refund, exc)
            result.retried += 1
            return
        await self._queue.mark_succeeded(refund, gateway_refund_id=refund_id, now=self._clock())
        result.refunded += 1

    async def _retry(self, refund: RefundRequest, exc: Exception) -> None:
        due = self._backoff.next_attempt_at(self._clock(), refund.attempts + 1, self._rng)
        await self._queue.schedule_retry(refund, due=due, error=f"{type(exc).__name__}: {exc}")
