"""The simulator's records as MercadoPago's JSON, field for field.

Payer and card details are present on purpose: a real payment carries them and payrelay
must not store them. Amounts stay Decimal; `jsonio.dumps` writes them exactly.
"""

from __future__ import annotations

from typing import Any

from payrelay.simulator.jsonio import iso
from payrelay.simulator.records import CARDHOLDER, Item, Payment, Preference, Refund

_CHECKOUT = "https://www.mercadopago.com/checkout/v1/redirect?pref_id="
_SANDBOX_CHECKOUT = "https://sandbox.mercadopago.com/checkout/v1/redirect?pref_id="


def preference_json(preference: Preference, *, collector_id: int) -> dict[str, Any]:
    return {
        **preference.extra,
        "id": preference.id,
        "collector_id": collector_id,
        "init_point": _CHECKOUT + preference.id,
        "sandbox_init_point": _SANDBOX_CHECKOUT + preference.id,
        "external_reference": preference.external_reference,
        "notification_url": preference.notification_url,
        "items": [_item_json(item) for item in preference.items],
        "date_created": iso(preference.date_created),
    }


def _item_json(item: Item) -> dict[str, Any]:
    return {
        "title": item.title,
        "quantity": item.quantity,
        "unit_price": item.unit_price,
        "currency_id": item.currency_id,
    }


def payment_json(payment: Payment, *, collector_id: int) -> dict[str, Any]:
    preference = payment.preference
    metadata = preference.extra.get("metadata")
    return {
        "id": payment.id,
        "date_created": iso(payment.date_created),
        "date_approved": iso(payment.date_approved) if payment.date_approved else None,
        "date_last_updated": iso(payment.date_last_updated),
        "operation_type": "regular_payment",
        "payment_method_id": "visa",
        "payment_type_id": "credit_card",
        "status": payment.status.value,
        "status_detail": payment.status_detail,
        "currency_id": preference.currency_id,
        "description": preference.items[0].title,
        "live_mode": False,
        "collector_id": collector_id,
        "external_reference": preference.external_reference,
        "notification_url": preference.notification_url,
        "transaction_amount": payment.amount,
        "transaction_amount_refunded": payment.amount_refunded,
        "installments": 1,
        "transaction_details": {
            "total_paid_amount": payment.amount,
            "installment_amount": payment.amount,
        },
        "payer": _payer_json(payment.id),
        "card": _card_json(payment),
        "order": {"id": preference.merchant_order_id, "type": "mercadopago"},
        "metadata": {
            **(metadata if isinstance(metadata, dict) else {}),
            "preference_id": preference.id,
        },
        "refunds": [refund_json(refund) for refund in payment.refunds],
    }


def _payer_json(payment_id: int) -> dict[str, Any]:
    return {
        "id": str(payment_id % 1_000_000 + 1_000_000_000),
        "email": f"test_user_{payment_id % 1000}@testuser.com",
        "first_name": "Test",
        "last_name": "Buyer",
        "identification": {"type": "DNI", "number": "12345678"},
        "phone": {"area_code": "11", "number": "5555-0100"},
    }


def _card_json(payment: Payment) -> dict[str, Any]:
    return {
        "first_six_digits": "450995",
        "last_four_digits": "3704",
        "expiration_month": 11,
        "expiration_year": 2030,
        "cardholder": {
            "name": CARDHOLDER[payment.outcome],
            "identification": {"type": "DNI", "number": "12345678"},
        },
    }


def refund_json(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "payment_id": refund.payment_id,
        "amount": refund.amount,
        "status": "approved",
        "date_created": iso(refund.date_created),
        "source": {"id": "simulator", "name": "collector", "type": "collector"},
        "unique_sequence_number": None,
    }


def search_json(
    page: list[Payment], *, total: int, limit: int, offset: int, collector_id: int
) -> dict[str, Any]:
    """A page of GET /v1/payments/search: the paging, then the payments on the page."""
    return {
        "paging": {"total": total, "limit": limit, "offset": offset},
        "results": [payment_json(payment, collector_id=collector_id) for payment in page],
    }
