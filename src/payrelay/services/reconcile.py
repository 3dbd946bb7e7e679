"""The reconciler: find what fell through by asking the gateway, and put it back on the path.

Nothing here applies state itself. A lost answer is healed by publishing the approval
again with its original message id (the order side's inbox repeats its recorded outcome);
a lost webhook is healed by recording a notification as if the gateway had sent it, so the
processor applies it exactly as it applies any other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from payrelay.domain.errors import GatewayError
from payrelay.ports import Clock, Gateway, NotificationLog, NotificationRecord, ReconciliationStore


@dataclass(frozen=True, slots=True)
class ReconcilePolicy:
    outcome_sla: timedelta = timedelta(seconds=60)
    """An approved payment without the order side's answer this long is published again."""
    checkout_min_age: timedelta = timedelta(minutes=5)
    """A checkout this old with no approved payment known is looked up in the gateway..."""
    checkout_max_age: timedelta = timedelta(days=2)
    """...until it is this old (abandoned carts are not searched forever)."""
    unsettled_age: timedelta = timedelta(minutes=5)
    """A pending / in_process / authorized payment this old is fetched again."""
    batch: int = 100


@dataclass
class ReconcileReport:
    resent_approvals: list[str] = field(default_factory=list)
    checkouts_checked: int = 0
    lost_payments_found: list[str] = field(default_factory=list)
    unsettled_refetched: list[str] = field(default_factory=list)
    gateway_errors: list[str] = field(default_factory=list)

    @property
    def fixes(self) -> int:
        return (
            len(self.resent_approvals)
            + len(self.lost_payments_found)
            + len(self.unsettled_refetched)
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Reconciler:
    def __init__(
        self,
        *,
        store: ReconciliationStore,
        notifications: NotificationLog,
        gateway: Gateway,
        clock: Clock,
        policy: ReconcilePolicy,
    ) -> None:
        self._store = store
        self._notifications = notifications
        self._gateway = gateway
        self._clock = clock
        self._policy = policy

    async def run_once(self) -> ReconcileReport:
        started = self._clock()
        report = ReconcileReport()
        await self._resend_unanswered(report)
        await self._find_lost_payments(report)
        await self._refetch_unsettled(report)
        await self._store.save_report(
            report.to_json(), started_at=started, finished_at=self._clock()
        )
        return report

    async def _resend_unanswered(self, report: ReconcileReport) -> None:
        now = self._clock()
        stuck = await self._store.unanswered_approvals(
            updated_before=now - self._policy.outcome_sla, limit=self._policy.batch
        )
        if stuck and await self._store.resend_approvals(stuck, now=now):
            report.resent_approvals.extend(stuck)

    async def _find_lost_payments(self, report: ReconcileReport) -> None:
        now = self._clock()
        order_ids = await self._store.checkouts_to_verify(
            created_before=now - self._policy.checkout_min_age,
            created_after=now - self._policy.checkout_max_age,
            limit=self._policy.batch,
        )
        report.checkouts_checked = len(order_ids)
        for order_id in order_ids:
            try:
                found = await self._gateway.search_payments(order_id)
            except GatewayError as exc:  # this checkout is looked at again next time
                report.gateway_errors.append(f"{order_id}: {type(exc).__name__}")
                continue
            known = await self._store.known_updates([p.payment_id for p in found])
            for snapshot in found:
                seen = known.get(snapshot.payment_id)
                if seen is None or seen < snapshot.date_last_updated:
                    stamp = snapshot.date_last_updated.isoformat()
                    await self._notify(snapshot.payment_id, f"reconcile:{stamp}")
                    report.lost_payments_found.append(snapshot.payment_id)
            await self._store.mark_verified(order_id, now=self._clock())

    async def _refetch_unsettled(self, report: ReconcileReport) -> None:
        now = self._clock()
        stale = await self._store.unsettled(
            updated_before=now - self._policy.unsettled_age, limit=self._policy.batch
        )
        for payment_id in stale:
            # One refetch per unsettled_age window, however often the reconciler runs.
            window = int(now.timestamp() // self._policy.unsettled_age.total_seconds())
            if await self._notify(payment_id, f"refetch:{window}"):
                report.unsettled_refetched.append(payment_id)

    async def _notify(self, payment_id: str, identity: str) -> bool:
        provider = self._gateway.provider
        return await self._notifications.record(
            NotificationRecord(
                dedupe_key=f"{provider}:payment:{payment_id}:{identity}",
                provider=provider,
                topic="payment",
                action="reconciler",
                resource_id=payment_id,
                request_id=None,
                received_at=self._clock(),
                ignored=False,
            )
        )
