"""GatewaySimulator: an in-memory MercadoPago, driven in-process or through `app.py`.

It decides what happens; the records are kept by `books.py`, webhooks and delayed changes
go out through `announcer.py`, and each API call passes the door in `access.py`.

Concurrency: everything runs on one event loop, and no method awaits between reading and
writing its state, so each call is atomic with respect to the others without a lock.
Methods that produce notifications are async only because they need the running loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

import httpx

from payrelay.simulator.access import ApiDoor
from payrelay.simulator.announcer import Announcer
from payrelay.simulator.books import Books
from payrelay.simulator.errors import BadRequest, NotFound
from payrelay.simulator.faults import ApiFault, FaultDice, SimulatorFaults
from payrelay.simulator.inputs import parse_outcome, parse_status
from payrelay.simulator.ledger import LedgerEntry
from payrelay.simulator.notifier import DeliveryPolicy, Notifier
from payrelay.simulator.records import Outcome, Payment, Status
from payrelay.simulator.render import payment_json, preference_json, refund_json, search_json
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
        self._secret = webhook_secret
        self._dice = FaultDice(faults or SimulatorFaults())
        self.approve_delay = approve_delay
        self.collector_id = collector_id
        self._stats = SimulatorStats()
        self._door = ApiDoor(access_token=access_token, stats=self._stats)
        notifier = Notifier(
            dice=lambda: self._dice,
            secret=lambda: self._secret,
            clock=clock,
            policy=delivery or DeliveryPolicy(),
            stats=self._stats,
            user_id=collector_id,
            transport=transport,
        )
        self._announcer = Announcer(notifier, self._stats)
        self._books = Books(collector_id=collector_id, clock=clock)

    async def start(self) -> None:
        await self._announcer.start()

    async def stop(self) -> None:
        """Cancel scheduled approvals and pending deliveries; close the HTTP client."""
        await self._announcer.stop()

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
        await self._announcer.settle()

    @property
    def in_flight(self) -> int:
        """Scheduled approvals plus notification copies still on their way (or retrying)."""
        return self._announcer.in_flight

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
        return self._announcer.crashes

    def authorize(self, authorization: str | None) -> None:
        """Raise Unauthorized unless the header is `Bearer <access token>`."""
        self._door.authorize(authorization)

    def roll_api_fault(self) -> ApiFault:
        """Decide (and count) what fault, if any, hits one authenticated API call."""
        return self._door.roll_fault(self._dice)

    # -- MercadoPago API ------------------------------------------------------------

    def create_preference(
        self, body: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """POST /checkout/preferences; the same idempotency key returns the same preference."""
        preference = self._books.open_preference(body, idempotency_key=idempotency_key)
        return preference_json(preference, collector_id=self.collector_id)

    def preference(self, preference_id: str) -> dict[str, Any]:
        preference = self._books.preference(preference_id)
        return preference_json(preference, collector_id=self.collector_id)

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
        now = self._books.now()
        visible = (p for p in self._books.payments() if self._visible(p, now))
        total, page = run_search(visible, query, now=now)
        return search_json(
            page, total=total, limit=query.limit, offset=query.offset,
            collector_id=self.collector_id,
        )

    async def refund(
        self,
        payment_id: int | str,
        *,
        amount: Decimal | int | str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """POST /v1/payments/{id}/refunds; a repeated key gives back the first refund."""
        payment = self._api_payment(payment_id)
        earlier = self._books.refund_for_key(payment, idempotency_key)
        if earlier is not None:
            return refund_json(earlier)
        refund = self._books.take_refund(payment, amount, idempotency_key=idempotency_key)
        self._announcer.announce(payment, UPDATED)
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
        preference = self._books.preference(preference_id)
        chosen = parse_outcome({"outcome": outcome})
        payment = self._books.open_payment(preference, chosen)
        if drop_notifications:
            self._announcer.silence(payment.id)
        self._announcer.announce(payment, CREATED)
        if chosen is Outcome.PENDING_THEN_APPROVE:
            self._announcer.later(self.approve_delay, lambda: self._approve_if_pending(payment))
        return payment.id

    async def set_status(
        self, payment_id: int | str, status: Status | str, *, status_detail: str | None = None
    ) -> dict[str, Any]:
        """Force a status (chargebacks, disputes...); refunded goes through a full refund."""
        payment = self._books.payment(payment_id)
        target = parse_status(status)
        if target is Status.REFUNDED:
            await self.refund(payment.id)
        else:
            payment.move(target, status_detail, self._books.now())
            self._announcer.announce(payment, UPDATED)
        return payment_json(payment, collector_id=self.collector_id)

    def peek_payment(self, payment_id: int | str) -> dict[str, Any]:
        """The payment as stored, visible to the API or not yet (a test's view)."""
        return payment_json(self._books.payment(payment_id), collector_id=self.collector_id)

    def ledger(self) -> dict[str, LedgerEntry]:
        """Money per order (external_reference), derived from the payments."""
        return self._books.ledger()

    def ledger_entry(self, order_id: str) -> LedgerEntry:
        return self._books.ledger_entry(order_id)

    # -- internals ---------------------------------------------------------------------

    def _api_payment(self, payment_id: int | str) -> Payment:
        """The payment as the API sees it: not found while it is not yet visible."""
        payment = self._books.payment(payment_id)
        if not self._visible(payment, self._books.now()):
            raise NotFound(f"Payment not found: {payment_id}")
        return payment

    def _visible(self, payment: Payment, now: datetime) -> bool:
        delay = timedelta(seconds=self._dice.faults.visibility_delay)
        return now - payment.date_created >= delay

    def _approve_if_pending(self, payment: Payment) -> None:
        # A test may have moved it meanwhile (rejected, cancelled): then leave it alone.
        if payment.status is Status.PENDING:
            payment.move(Status.APPROVED, None, self._books.now())
            self._announcer.announce(payment, UPDATED)
