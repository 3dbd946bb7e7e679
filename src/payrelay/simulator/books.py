"""The simulator's books: every preference, payment and refund it recorded, found by id.

Records only: no event loop, no notification, no fault. GatewaySimulator (`state.py`)
decides what happens and who hears of it; the books keep it, stamp it with the clock at
MercadoPago's precision, hand out MercadoPago-shaped ids, and remember idempotency keys,
since a key is a way of finding an earlier record.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from payrelay.simulator.amounts import parse_amount
from payrelay.simulator.errors import NotFound
from payrelay.simulator.inputs import parse_preference
from payrelay.simulator.ledger import LedgerEntry, build_ledger
from payrelay.simulator.records import FIRST_STATUS, Outcome, Payment, Preference, Refund


class Books:
    """Preferences, payments and refunds in memory, with their idempotency keys."""

    def __init__(self, *, collector_id: int, clock: Callable[[], datetime]) -> None:
        self.collector_id = collector_id
        self._clock = clock
        self._preferences: dict[str, Preference] = {}
        self._preference_keys: dict[str, str] = {}
        self._payments: dict[int, Payment] = {}
        self._refund_keys: dict[tuple[int, str], Refund] = {}
        self._payment_ids = itertools.count(1_000_000_001)
        self._refund_ids = itertools.count(2_000_000_001)
        self._order_ids = itertools.count(9_000_000_001)

    def now(self) -> datetime:
        """The clock at MercadoPago's precision (milliseconds): what is stored is what is
        shown, so a date read from an answer finds the same payment in a search."""
        now = self._clock()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    def open_preference(
        self, body: Mapping[str, Any], *, idempotency_key: str | None
    ) -> Preference:
        """A new preference from a checked request body, or the one the key opened before."""
        if idempotency_key and idempotency_key in self._preference_keys:
            return self._preferences[self._preference_keys[idempotency_key]]
        request = parse_preference(body)
        preference = Preference(
            id=f"{self.collector_id}-{uuid.uuid4()}",
            items=request.items,
            external_reference=request.external_reference,
            notification_url=request.notification_url,
            date_created=self.now(),
            merchant_order_id=next(self._order_ids),
            extra=request.extra,
        )
        self._preferences[preference.id] = preference
        if idempotency_key:
            self._preference_keys[idempotency_key] = preference.id
        return preference

    def preference(self, preference_id: str) -> Preference:
        preference = self._preferences.get(preference_id)
        if preference is None:
            raise NotFound(f"preference {preference_id} not found")
        return preference

    def open_payment(self, preference: Preference, outcome: Outcome) -> Payment:
        """A new payment of `preference`, in the first status `outcome` gives it."""
        status, now = FIRST_STATUS[outcome], self.now()
        payment = Payment(
            id=next(self._payment_ids),
            preference=preference,
            outcome=outcome,
            status=status,
            status_detail="",
            date_created=now,
            date_last_updated=now,
        )
        payment.move(status, None, now)
        self._payments[payment.id] = payment
        return payment

    def payment(self, payment_id: int | str) -> Payment:
        """The payment, whether the API can see it yet or not; NotFound if there is none."""
        text = str(payment_id)
        payment = self._payments.get(int(text)) if text.isdigit() else None
        if payment is None:
            raise NotFound(f"Payment not found: {text}")
        return payment

    def payments(self) -> Iterable[Payment]:
        """Every payment, in creation order."""
        return self._payments.values()

    def refund_for_key(self, payment: Payment, idempotency_key: str | None) -> Refund | None:
        """The refund of `payment` an earlier request with this key made, if any."""
        if not idempotency_key:
            return None
        return self._refund_keys.get((payment.id, idempotency_key))

    def take_refund(
        self,
        payment: Payment,
        amount: Decimal | int | str | None,
        *,
        idempotency_key: str | None,
    ) -> Refund:
        """Refund `amount` (None: all that is left) of `payment`, or BadRequest."""
        currency = payment.preference.currency_id
        asked = None if amount is None else parse_amount(amount, currency, name="amount")
        value = payment.check_refund(asked)  # before an id is taken: a refused one takes none
        refund = Refund(next(self._refund_ids), payment.id, value, self.now())
        payment.add_refund(refund)
        if idempotency_key:
            self._refund_keys[(payment.id, idempotency_key)] = refund
        return refund

    def ledger(self) -> dict[str, LedgerEntry]:
        """Money per order (external_reference), derived from the payments."""
        return build_ledger(self._preferences.values(), self._payments.values())

    def ledger_entry(self, order_id: str) -> LedgerEntry:
        entry = self.ledger().get(order_id)
        if entry is None:
            raise NotFound(f"no preference for order {order_id!r}")
        return entry
