"""The reconciler: find what fell through by asking the gateway, and put it back on the path.

Nothing here applies state itself. A lost answer is healed by publishing the approval
again with its original message id (the order side's inbox repeats its recorded outcome);
a lost webhook is healed by recording a notification as if the gateway had sent it, so the
processor applies it exactly as it applies any other.

Lost webhooks are found by the sweep: every run reads, page by page, every payment the
gateway updated since the stored watermark, whatever its order's state, and records a
notification for each one payrelay does not know at that update. Young checkouts are also
searched one by one, as a second look.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from payrelay.domain.errors import GatewayError
from payrelay.domain.payment import PaymentSnapshot
from payrelay.ports import Clock, Gateway, NotificationLog, NotificationRecord, ReconciliationStore
from payrelay.services import timeline_steps
from payrelay.services.sweep import SweepCursor, safe_watermark

log = logging.getLogger(__name__)


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
    sweep_overlap: timedelta = timedelta(minutes=2)
    """A sweep starts this much before where the last one ended: the gateway lists a new
    payment only a while after it is made, and its clock is not ours."""
    sweep_page_size: int = 100
    sweep_max_pages: int = 20
    """A run reads at most this many pages; the next run goes on from where it stopped."""
    sweep_first_lookback: timedelta = timedelta(days=2)
    """With no watermark yet, the first sweep starts this long ago."""


@dataclass
class ReconcileReport:
    resent_approvals: list[str] = field(default_factory=list)
    payments_swept: int = 0
    """Payments the sweep read (those of its overlap again, every run)."""
    sweep_window: list[str] = field(default_factory=list)
    """[from, to]: the update dates this run's sweep covered, ISO 8601."""
    sweep_pages: int = 0
    sweep_complete: bool = False
    """False when the page bound or a gateway error stopped it: the next run goes on."""
    sweep_watermark: str | None = None
    """Where the next sweep starts."""
    checkouts_checked: int = 0
    lost_payments_found: list[str] = field(default_factory=list)
    """Payments recorded as notifications because payrelay did not know them (at that
    update), found by the sweep or by a checkout's search."""
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

    def repairs(self) -> dict[str, list[str]]:
        """The payment ids this run put back on the normal path, by the check that found them."""
        return {"resent_approvals": self.resent_approvals,
                "lost_payments_found": self.lost_payments_found,
                "unsettled_refetched": self.unsettled_refetched}


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
        await self._sweep(report)
        await self._find_lost_payments(report)
        await self._refetch_unsettled(report)
        await self._store.save_report(
            report.to_json(), started_at=started, finished_at=self._clock()
        )
        self._tell(report)
        return report

    def _tell(self, report: ReconcileReport) -> None:
        """One INFO line per repair, with the payment's ids; gateway errors as a warning."""
        for check, found in report.repairs().items():
            for payment_id in found:
                log.info("reconciler repaired a payment: %s", check, extra={
                    "check": check, "order_id": None, "payment_id": payment_id,
                    "correlation_id": f"{self._gateway.provider}:{payment_id}"})
        if report.gateway_errors:
            log.warning("reconciler met gateway errors; the next run goes on", extra={
                "errors": report.gateway_errors[:20], "sweep_complete": report.sweep_complete})

    async def _resend_unanswered(self, report: ReconcileReport) -> None:
        now = self._clock()
        stuck = await self._store.unanswered_approvals(
            updated_before=now - self._policy.outcome_sla, limit=self._policy.batch
        )
        if stuck:
            steps = {p: timeline_steps.resent(p, at=now) for p in stuck}
            report.resent_approvals.extend(
                await self._store.resend_approvals(stuck, now=now, timeline=steps))

    async def _sweep(self, report: ReconcileReport) -> None:
        """Read every payment updated since the watermark, oldest update first."""
        policy = self._policy
        started = self._clock()
        start = await self._store.sweep_watermark(self._gateway.provider)
        if start is None:
            start = started - policy.sweep_first_lookback
        report.sweep_window = [start.isoformat(), started.isoformat()]
        cursor, reached = SweepCursor(start), start
        try:
            while not cursor.done and report.sweep_pages < policy.sweep_max_pages:
                page = await self._gateway.sweep_payments(
                    updated_from=cursor.at, updated_to=started, offset=cursor.skip,
                    limit=policy.sweep_page_size,
                )
                report.sweep_pages += 1
                report.payments_swept += len(page.payments)
                await self._record_unknown(page.payments, report)
                for payment_id, _ in page.unreadable:  # the processor gives it up, with why
                    if await self._notify(payment_id, "unreadable"):
                        report.lost_payments_found.append(payment_id)
                cursor = cursor.after(page)
                # Everything before the cursor is read now; at the end, the whole window.
                reached = started if cursor.done else cursor.at
        except GatewayError as exc:  # the watermark stays at the last page read
            report.gateway_errors.append(f"sweep from {cursor.at.isoformat()}: {exc}")
        report.sweep_complete = cursor.done
        await self._advance_watermark(report, start=start, reached=reached, started=started)

    async def _advance_watermark(
        self, report: ReconcileReport, *, start: datetime, reached: datetime, started: datetime
    ) -> None:
        """Only as far as this run read: a sweep cut short goes on from there next time."""
        mark = safe_watermark(reached, started=started, overlap=self._policy.sweep_overlap)
        watermark = max(start, mark)
        if watermark > start:
            await self._store.advance_sweep_watermark(
                self._gateway.provider, watermark, now=self._clock()
            )
        report.sweep_watermark = watermark.isoformat()

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
            await self._record_unknown(found, report)
            await self._store.mark_verified(order_id, now=self._clock())

    async def _record_unknown(
        self, found: Sequence[PaymentSnapshot], report: ReconcileReport
    ) -> None:
        """A notification for each payment payrelay does not know at this update."""
        known = await self._store.known_updates([p.payment_id for p in found])
        for snapshot in found:
            seen = known.get(snapshot.payment_id)
            if seen is None or seen < snapshot.date_last_updated:
                # One key per payment and update: the sweep, a checkout's search and later
                # runs that meet the same update before it is processed record it once.
                stamp = snapshot.date_last_updated.isoformat()
                if await self._notify(snapshot.payment_id, f"reconcile:{stamp}"):
                    report.lost_payments_found.append(snapshot.payment_id)

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
