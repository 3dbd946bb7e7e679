"""A checkout: the gateway's payment link for one order, created once and kept."""

from __future__ import annotations

from dataclasses import dataclass

from payrelay.domain.money import Money


@dataclass(frozen=True, slots=True)
class Checkout:
    order_id: str
    provider: str
    preference_id: str
    init_point: str
    amount: Money
