"""Counters for what the simulator did, so a test can tell a lost webhook from a slow one."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class SimulatorStats:
    """Running totals; `GatewaySimulator.stats` hands out copies."""

    notifications: int = 0
    """Notifications the simulator produced (one per payment event with a notification_url)."""
    sent: int = 0
    """HTTP POSTs made, counting retries and duplicate copies."""
    delivered: int = 0
    """POSTs answered 2xx."""
    failed_attempts: int = 0
    """POSTs answered non-2xx or that failed to connect; each is retried while attempts last."""
    failed: int = 0
    """Copies given up on after the last attempt."""
    dropped: int = 0
    """Notifications never sent because a drop switch fired."""
    duplicated: int = 0
    """Extra copies scheduled by `duplicate_rate`."""
    delayed: int = 0
    """Copies held back by a random delay."""
    reordered: int = 0
    """Notifications that went through the shuffling buffer."""
    abandoned: int = 0
    """Copies still pending when the simulator stopped."""
    api_errors: int = 0
    """API calls refused with 500/503 before taking effect."""
    api_lost_replies: int = 0
    """API calls that took effect but answered 500/503."""
    api_slow: int = 0
    """API calls answered slowly."""

    def copy(self) -> SimulatorStats:
        return SimulatorStats(**asdict(self))

    def as_json(self) -> dict[str, int]:
        return asdict(self)
