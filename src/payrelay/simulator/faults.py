"""Fault switches for the simulator, and the seeded dice that decide when they fire.

Every switch is off by default. All randomness comes from `random.Random` instances
seeded from `SimulatorFaults.seed`, one per concern (notifications, ordering, API calls),
so that a timing-dependent draw in one (how a reorder buffer happened to fill) cannot shift
the draws of another: the same seed and the same calls give the same faults.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from typing import Any, TypeVar

from payrelay.simulator.errors import BadRequest

T = TypeVar("T")

_RATES = ("duplicate_rate", "drop_rate", "api_error_rate", "api_lost_reply_rate", "api_slow_rate")
_SECONDS = ("delay_max", "reorder_window", "api_slow_seconds", "visibility_delay")


@dataclass(frozen=True, slots=True)
class SimulatorFaults:
    """What may go wrong, on purpose. Rates are probabilities in [0, 1]; times are seconds."""

    seed: int = 0
    duplicate_rate: float = 0.0
    """Probability that a notification is sent 2 or 3 times."""
    delay_max: float = 0.0
    """Each copy of a notification waits a random 0..delay_max seconds before its first try."""
    reorder: bool = False
    """Hold notifications in a small buffer and send each batch shuffled."""
    reorder_window: float = 0.1
    """How long the reorder buffer waits for company before it is flushed."""
    drop_rate: float = 0.0
    """Probability that a notification is never sent."""
    drop_payment_ids: frozenset[str] = field(default_factory=frozenset)
    """Every notification about these payments is dropped (lost-webhook tests)."""
    drop_all: bool = False
    """Drop every notification: payrelay must reconcile by polling."""
    api_error_rate: float = 0.0
    """Probability that an authenticated API call fails with 500/503 before any effect."""
    api_lost_reply_rate: float = 0.0
    """Probability that an API call takes effect but answers 500/503 (a reply lost on the way)."""
    api_slow_rate: float = 0.0
    """Probability that an authenticated API call answers only after `api_slow_seconds`."""
    api_slow_seconds: float = 0.0
    visibility_delay: float = 0.0
    """For this many seconds after it is created, a payment is unknown to the API:
    GET /v1/payments/{id} answers 404 and search does not list it, although its
    notification may already be on its way (MercadoPago's reads lag its writes)."""

    def __post_init__(self) -> None:
        for name in _RATES:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        for name in _SECONDS:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


def faults_from_json(raw: object) -> SimulatorFaults:
    """Build faults from a JSON object (the body of PUT /simulator/faults); unset keys are off."""
    if not isinstance(raw, Mapping):
        raise BadRequest("faults must be a JSON object")
    known = {f.name for f in fields(SimulatorFaults)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise BadRequest(f"unknown fault switches: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        values[name] = _coerce(name, value)
    try:
        return SimulatorFaults(**values)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc


def faults_to_json(faults: SimulatorFaults) -> dict[str, Any]:
    raw = asdict(faults)
    raw["drop_payment_ids"] = sorted(faults.drop_payment_ids)
    return raw


def _coerce(name: str, value: object) -> object:
    if name in ("reorder", "drop_all"):
        return _expect(name, value, bool)
    if name == "seed":
        if isinstance(value, bool):
            raise BadRequest("seed must be an integer")
        return _expect(name, value, int)
    if name == "drop_payment_ids":
        if not isinstance(value, list):
            raise BadRequest("drop_payment_ids must be a list")
        return frozenset(str(item) for item in value)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise BadRequest(f"{name} must be a number")
    # Rates and delays are probabilities and durations, not money: float is right here.
    return float(value)


def _expect(name: str, value: object, kind: type[T]) -> T:
    if not isinstance(value, kind):
        raise BadRequest(f"{name} must be {kind.__name__}")
    return value


@dataclass(frozen=True, slots=True)
class ApiFault:
    """What the dice decided for one API call."""

    slow_seconds: float = 0.0
    error_status: int | None = None
    after_effect: bool = False
    """True when the call must take effect and only its reply fails."""


NO_API_FAULT = ApiFault()


class FaultDice:
    """Seeded random decisions for one set of faults; replaced whole when faults change."""

    def __init__(self, faults: SimulatorFaults) -> None:
        self.faults = faults
        self._notify = random.Random(f"{faults.seed}:notify")
        self._order = random.Random(f"{faults.seed}:order")
        self._api = random.Random(f"{faults.seed}:api")

    def delivery_delays(self, payment_id: str) -> tuple[float, ...]:
        """One delay per copy to send; empty when the notification is dropped."""
        f = self.faults
        # Draw every number even when a switch is off, so turning one switch on does not
        # shift the draws of the others for the same seed.
        dropped = self._notify.random() < f.drop_rate
        extra = self._notify.choice((1, 2)) if self._notify.random() < f.duplicate_rate else 0
        delays = tuple(self._notify.uniform(0.0, f.delay_max) for _ in range(3))
        if f.drop_all or dropped or payment_id in f.drop_payment_ids:
            return ()
        return delays[: 1 + extra]

    def shuffle(self, batch: list[T]) -> None:
        self._order.shuffle(batch)

    def api_call(self) -> ApiFault:
        f = self.faults
        error, lost, slow = (self._api.random() for _ in range(3))
        status = self._api.choice((500, 503))
        slow_seconds = f.api_slow_seconds if slow < f.api_slow_rate else 0.0
        if error < f.api_error_rate:
            return ApiFault(slow_seconds, status, after_effect=False)
        if lost < f.api_lost_reply_rate:
            return ApiFault(slow_seconds, status, after_effect=True)
        return ApiFault(slow_seconds) if slow_seconds else NO_API_FAULT
