"""Everything given up on, for a person: inspect, replay, purge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message no consumer could apply, kept with why, for a person to inspect."""

    id: str  # "<where>-<n>": payments-/orders- (messages), notification-, refund-
    message_id: str | None
    exchange: str | None
    routing_key: str | None
    queue: str | None
    reason: str
    error: str | None
    attempts: int
    dead_at: datetime
    body: bytes
    order_id: str | None = None
    payment_id: str | None = None


class DeadLetterBox(Protocol):
    """Everything given up on, in both databases: dead messages, and the notifications and
    refunds `decide_retry` gave up on. Inspect, replay (idempotently), purge."""

    async def recent(self, *, limit: int = 100) -> list[DeadLetter]: ...

    async def get(self, dead_letter_id: str) -> DeadLetter | None: ...

    async def replay(self, dead_letter_ids: Sequence[str] | None) -> list[str]:
        """Send them again with their message ids (None: all). Returns the ids replayed."""
        ...

    async def purge(self, dead_letter_ids: Sequence[str]) -> list[str]: ...
