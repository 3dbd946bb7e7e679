"""The door every authenticated API call comes through: the access token, then the dice.

MercadoPago answers 401 to a wrong Bearer token before anything else; only a call let in
can meet an API fault (slow, failed before its effect, or its reply lost after it).
"""

from __future__ import annotations

import hmac

from payrelay.simulator.errors import Unauthorized
from payrelay.simulator.faults import ApiFault, FaultDice
from payrelay.simulator.stats import SimulatorStats


class ApiDoor:
    """Checks the access token and rolls (and counts) the fault that hits each call."""

    def __init__(self, *, access_token: str, stats: SimulatorStats) -> None:
        self._access_token = access_token
        self._stats = stats

    def authorize(self, authorization: str | None) -> None:
        """Raise Unauthorized unless the header is `Bearer <access token>`."""
        scheme, _, token = (authorization or "").partition(" ")
        valid = scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self._access_token.encode()
        )
        if not valid:
            raise Unauthorized("invalid access token")

    def roll_fault(self, dice: FaultDice) -> ApiFault:
        """Decide (and count) what fault, if any, hits one authenticated API call."""
        fault = dice.api_call()
        if fault.slow_seconds > 0:
            self._stats.api_slow += 1
        if fault.error_status is not None:
            if fault.after_effect:
                self._stats.api_lost_replies += 1
            else:
                self._stats.api_errors += 1
        return fault
