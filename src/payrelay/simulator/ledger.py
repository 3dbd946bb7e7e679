"""The gateway's view of money per order: what was captured and what was given back.

Derived from the payments on every call rather than kept as running sums, so it cannot
drift from the payments it summarises. Tests compare it with payrelay's own books.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from payrelay.simulator.records import Payment, Preference, Status


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """Money for one order (external_reference); amounts are exact Decimals."""

    currency: str
    charged: Decimal
    """Sum of the amounts of payments that reached approved (captured from the customer)."""
    refunded: Decimal
    """Sum of refunds."""
    payment_ids: tuple[int, ...]
    charged_back: Decimal = Decimal(0)
    """Sum of the amounts of payments now charged back (taken back by the card issuer)."""

    @property
    def net(self) -> Decimal:
        """What the merchant keeps."""
        return self.charged - self.refunded - self.charged_back


def build_ledger(
    preferences: Iterable[Preference], payments: Iterable[Payment]
) -> dict[str, LedgerEntry]:
    """One entry per external_reference seen in a preference, payments in creation order."""
    entries: dict[str, LedgerEntry] = {}
    for preference in preferences:
        order = preference.external_reference
        if order is not None and order not in entries:
            zero = Decimal(0)
            entries[order] = LedgerEntry(preference.currency_id, zero, zero, ())
    for payment in sorted(payments, key=lambda p: p.id):
        order = payment.preference.external_reference
        if order is not None:
            entries[order] = _add(entries[order], payment)
    return entries


def _add(entry: LedgerEntry, payment: Payment) -> LedgerEntry:
    captured = payment.amount if payment.date_approved is not None else Decimal(0)
    taken_back = payment.amount if payment.status is Status.CHARGED_BACK else Decimal(0)
    return LedgerEntry(
        currency=entry.currency,
        charged=entry.charged + captured,
        refunded=entry.refunded + payment.amount_refunded,
        payment_ids=(*entry.payment_ids, payment.id),
        charged_back=entry.charged_back + taken_back,
    )


def ledger_entry_json(entry: LedgerEntry) -> dict[str, Any]:
    """Amounts as decimal strings, as GET /simulator/ledger answers."""
    return {
        "currency": entry.currency,
        "charged": str(entry.charged),
        "refunded": str(entry.refunded),
        "charged_back": str(entry.charged_back),
        "payments": list(entry.payment_ids),
    }
