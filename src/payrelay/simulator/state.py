"""GatewaySimulator: an in-memory MercadoPago, driven in-process or through `app.py`.

Concurrency: everything runs on one event loop, and no method awaits between reading and
writing its state, so each call is atomic with respect to the others without a lock.
Methods that produce notifications are async only because they need the running loop.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

import httpx

from payrelay.simulator.amounts import parse_amount
from payrelay.simulator.errors import BadRequest, NotFound, Unauthorized
from payrelay.simulator.faults import ApiFault, FaultDice, SimulatorFaults
from payrelay.simulator.inputs import parse_outcome, parse_preference, parse_status
from payrelay.simulator.ledger import LedgerEntry, build_ledger
from payrelay.simulator.notifier import DeliveryPolicy, Notifier
from payrelay.simulator.records import FIRST_STATUS, Outcome, Payment, Preference, Refund, Status
from payrelay.simulator.render import payment_json, preference_json, refund_json
from payrelay.simulator.search import (
    DEFAULT_LIMIT,
    Criteria,
    DateField,
    SearchQuery,
    parse_criteria,
    parse_range,
    parse_sort,
    run_search,
)
from payrelay.simulator.stats import SimulatorStats

CREATED, UPDATED = "payment.created", "payment.updated"


def utc_now() -> datetime:
    return datetime.now(UTC)


class GatewaySimulator:
    """MercadoPago's payments, refunds and webhooks, in memory.

    Use as `async with GatewaySimulator(...) as sim:` (or start()/stop()) so notifications
    are delivered; reads and preferences work without starting it.
    """

    def __init__(
        self,
        *,
        access_token: str,
        webhook_secret: str,
        faults: SimulatorFaults | None = None,
        clock: Callable[[], datetime] = utc_now,
        approve_delay: float = 0.2,
        delivery: DeliveryPolicy | None = None,
        collector_id: int = 123456,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._access_token = access_token
        self._secret = webhook_secret
        self._dice = FaultDice(faults or SimulatorFaults())
        self._clock = clock
        self.approve_delay = approve_delay
        self.collector_id = collector_id
        self._stats = SimulatorStats()
        self._notifier = Notifier(
            dice=lambda: self._dice,
            secret=lambda: self._secret,
            clock=clock,
            policy=delivery or DeliveryPolicy(),
            stats=self._stats,
            user_id=collector_id,
            transport=transport,
        )
        self._preferences: dict[str, Preference] = {}
        self._preference_keys: dict[str, str] = {}
        self._payments: dict[int, Payment] = {}
        self._refund_keys: dict[tuple[int, str], Refund] = {}
        self._payment_ids = itertools.count(1_000_000_001)
        self._refund_ids = itertools.count(2_000_000_001)
        self._order_ids = itertools.count(9_000_000_001)
        self._timers: set[asyncio.Task[None]] = set()
        self._silenced: set[int] = set()  # payments whose webhooks are all lost

    async def start(self) -> None:
        await self._notifier.start()

    async def stop(self) -> None:
        """Cancel scheduled approvals and pending deliveries; close the HTTP client."""
        timers = list(self._timers)
        for timer in timers:
            timer.cancel()
        await asyncio.gather(*timers, return_exceptions=True)
        await self._notifier.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def settle(self) -> None:
        """Wait until scheduled approvals ran and every notification was delivered or given up.

        Bound it from outside: `async with asyncio.timeout(2): await sim.settle()`.
        """
        while self._timers:
            await asyncio.wait(set(self._timers))
        await self._notifier.wait_idle()

    @property
    def in_flight(self) -> int:
        """Scheduled approvals plus notification copies still on their way (or retrying)."""
        return len(self._timers) + self._notifier.in_flight

    # -- configuration -------------------------------------------------------------

    @property
    def faults(self) -> SimulatorFaults:
        return self._dice.faults

    def set_faults(self, faults: SimulatorFaults) -> None:
        """Replace every fault switch; the dice restart from the new seed."""
        self._dice = FaultDice(faults)

    @property
    def webhook_secret(self) -> str:
        return self._secret

    def rotate_secret(self, new_secret: str) -> None:
        """Sign from now on (retries included) with `new_secret`."""
        if not new_secret:
            raise BadRequest("the webhook secret must not be empty")
        self._secret = new_secret

    @property
    def stats(self) -> SimulatorStats:
        return self._stats.copy()

    @property
    def delivery_crashes(self) -> list[BaseException]:
        return list(self._notifier.crashes)

    def authorize(self, authorization: str | None) -> None:
        """Raise Unauthorized unless the header is `Bearer <access token>`."""
        scheme, _, token = (authorization or "").partition(" ")
        valid = scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self._access_token.encode()
        )
        if not valid:
            raise Unauthorized("invalid access token")

    def roll_api_fault(self) -> ApiFault:
        """Decide (and count) what fault, if any, hits one authenticated API call."""
        fault = self._dice.api_call()
        if fault.slow_seconds > 0:
            self._stats.api_slow += 1
        if fault.error_status is not None:
            if fault.after_effect:
                self._stats.api_lost_replies += 1
            else:
                self._stats.api_errors += 1
        return fault

    # -- MercadoPago API ------------------------------------------------------------

    def create_preference(
        self, body: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """POST /checkout/preferences; the same idempotency key returns the same preference."""
        if idempotency_key and idempotency_key in self._preference_keys:
            return self.preference(self._preference_keys[idempotency_key])
        request = parse_preference(body)
        preference = Preference(
            id=f"{self.collector_id}-{uuid.uuid4()}",
            items=request.items,
            external_reference=request.external_reference,
            notification_url=request.notification_url,
            date_created=self._now(),
            merchant_order_id=next(self._order_ids),
            extra=request.extra,
        )
        self._preferences[preference.id] = preference
        if idempotency_key:
            self._preference_keys[idempotency_key] = preference.id
        return preference_json(preference, collector_id=self.collector_id)

    def preference(self, preference_id: str) -> dict[str, Any]:
        return preference_json(self._preference(preference_id), collector_id=self.collector_id)

    def payment(self, payment_id: int | str) -> dict[str, Any]:
        """GET /v1/payments/{id}: the payment as MercadoPago's JSON (amounts as Decimal)."""
        return payment_json(self._api_payment(payment_id), collector_id=self.collector_id)

    def search_payments(
        self,
        *,
        external_reference: str | None = None,
        range: DateField | str = DateField.DATE_CREATED,  # MercadoPago's name
        begin_date: datetime | str = "NOW-3MONTHS",
        end_date: datetime | str = "NOW",
        sort: DateField | str = DateField.DATE_CREATED,
        criteria: Criteria | str = Criteria.ASC,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
    ) -> dict[str, Any]:
        """GET /v1/payments/search (see `search.py`); in process, any limit is accepted."""
        return self.search(
            SearchQuery(
                external_reference=external_reference,
                range=parse_range(range),
                begin_date=begin_date,
                end_date=end_date,
                sort=parse_sort(sort),
                criteria=parse_criteria(criteria),
                limit=limit,
                offset=offset,
            )
        )

    def search(self, query: SearchQuery) -> dict[str, Any]:
        """Run a checked search over the payments the API can see now."""
        now = self._now()
        visible = (p for p in self._payments.values() if self._visible(p, now))
        total, page = run_search(visible, query, now=now)
        return {
            "paging": {"total": total, "limit": query.limit, "offset": query.offset},
            "results": [payment_json(p, collector_id=self.collector_id) for p in page],
        }

    async def refund(
        self,
        payment_id: int | str,
        *,
        amount: Decimal | int | str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """POST /v1/payments/{id}/refunds; a repeated key gives back the first refund."""
        payment = self._api_payment(payment_id)
        if idempotency_key and (payment.id, idempotency_key) in self._refund_keys:
            return refund_json(self._refund_keys[(payment.id, idempotency_key)])
        refund = self._take_refund(payment, amount)
        if idempotency_key:
            self._refund_keys[(payment.id, idempotency_key)] = refund
        return refund_json(refund)

    def refunds(self, payment_id: int | str) -> list[dict[str, Any]]:
        return [refund_json(refund) for refund in self._api_payment(payment_id).refunds]

    # -- customer and test controls -------------------------------------------------

    async def pay(
        self,
        preference_id: str,
        outcome: Outcome | str = Outcome.APPROVE,
        *,
        drop_notifications: bool = False,
    ) -> int:
        """The customer pays the preference: a new payment each call; returns its id.

        `drop_notifications`: no webhook about this payment is ever sent (it was lost), so
        only a search of the API can find it.
        """
        preference = self._preference(preference_id)
        chosen = parse_outcome({"outcome": outcome})
        now = self._now()
        status = FIRST_STATUS[chosen]
        payment = Payment(
            id=next(self._payment_ids),
            preference=preference,
            outcome=chosen,
            status=status,
            status_detail="",
            date_created=now,
            date_last_updated=now,
        )
        payment.move(status, None, now)
        self._payments[payment.id] = payment
        if drop_notifications:
            self._silenced.add(payment.id)
        self._notify(payment, CREATED)
        if chosen is Outcome.PENDING_THEN_APPROVE:
            timer = asyncio.create_task(self._approve_later(payment.id))
            self._timers.add(timer)
            timer.add_done_callback(self._timers.discard)
        return payment.id

    async def set_status(
        self, payment_id: int | str, status: Status | str, *, status_detail: str | None = None
    ) -> dict[str, Any]:
        """Force a status (chargebacks, disputes...); refunded goes through a full refund."""
        payment = self._payment(payment_id)
        target = parse_status(status)
        if target is Status.REFUNDED:
            await self.refund(payment.id)
        else:
            payment.move(target, status_detail, self._now())
            self._notify(payment, UPDATED)
        return payment_json(payment, collector_id=self.collector_id)

    def peek_payment(self, payment_id: int | str) -> dict[str, Any]:
        """The payment as stored, visible to the API or not yet (a test's view)."""
        return payment_json(self._payment(payment_id), collector_id=self.collector_id)

    def ledger(self) -> dict[str, LedgerEntry]:
        """Money per order (external_reference), derived from the payments."""
        return build_ledger(self._preferences.values(), self._payments.values())

    def ledger_entry(self, order_id: str) -> LedgerEntry:
        entry = self.ledger().get(order_id)
        if entry is None:
            raise NotFound(f"no preference for order {order_id!r}")
        return entry

    # -- internals ---------------------------------------------------------------------

    def _preference(self, preference_id: str) -> Preference:
        preference = self._preferences.get(preference_id)
        if preference is None:
            raise NotFound(f"preference {preference_id} not found")
        return preference

    def _payment(self, payment_id: int | str) -> Payment:
        text = str(payment_id)
        payment = self._payments.get(int(text)) if text.isdigit() else None
        if payment is None:
            raise NotFound(f"Payment not found: {text}")
        return payment

    def _api_payment(self, payment_id: int | str) -> Payment:
        """The payment as the API sees it: not found while it is not yet visible."""
        payment = self._payment(payment_id)
        if not self._visible(payment, self._now()):
            raise NotFound(f"Payment not found: {payment_id}")
        return payment

    def _visible(self, payment: Payment, now: datetime) -> bool:
        delay = timedelta(seconds=self._dice.faults.visibility_delay)
        return now - payment.date_created >= delay

    def _now(self) -> datetime:
        """The clock at MercadoPago's precision (milliseconds): what is stored is what is
        shown, so a date read from an answer finds the same payment in a search."""
        now = self._clock()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    def _take_refund(self, payment: Payment, amount: Decimal | int | str | None) -> Refund:
        currency = payment.preference.currency_id
        value = None if amount is None else parse_amount(amount, currency, name="amount")
        value = payment.check_refund(value)
        refund = Refund(next(self._refund_ids), payment.id, value, self._now())
        payment.add_refund(refund)
        self._notify(payment, UPDATED)
        return refund

    async def _approve_later(self, payment_id: int) -> None:
        await asyncio.sleep(self.approve_delay)
        payment = self._payments[payment_id]
        # A test may have moved it meanwhile (rejected, cancelled): then leave it alone.
        if payment.status is Status.PENDING:
            payment.move(Status.APPROVED, None, self._now())
            self._notify(payment, UPDATED)

    def _notify(self, payment: Payment, action: str) -> None:
        url = payment.preference.notification_url
        if url and payment.id in self._silenced:
            self._stats.notifications += 1
            self._stats.dropped += 1
        elif url:
            self._notifier.notify(payment_id=payment.id, action=action, notification_url=url)
