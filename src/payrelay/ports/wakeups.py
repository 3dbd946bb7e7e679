"""Wake-ups across processes: a stage that commits work tells the next stage at once.

An idle worker sleeps until its wake event is set or its poll interval passes. In one
process the stage before it sets that event directly (`on_committed`, `on_recorded`);
`Wakeups` carries the same news between processes. No service signals anything by hand:
committing a row of due work to a channel's table *is* the signal. The storage adapter
makes that commit notify the channel, so a rolled-back write wakes nobody (on PostgreSQL a
trigger runs `pg_notify` in the writing transaction, delivered on commit).

A wake-up is a hint, never the guarantee: polling still finds every row, so a lost
wake-up, or a lost listener, costs at most one poll interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from enum import StrEnum
from typing import Protocol


class WakeChannel(StrEnum):
    """Which stage's work was committed; the value is the PostgreSQL channel name."""

    NOTIFICATIONS = "payrelay_notifications"
    """A notification is due: ingest, the reconciler, the refunder's re-fetch, a replay.
    Wakes the processor."""
    PAYMENTS_OUTBOX = "payrelay_payments_outbox"
    """A payment event is pending: the processor, a reconciler resend, a dead-letter
    replay. Wakes the payments relay."""
    ORDERS_OUTBOX = "payrelay_orders_outbox"
    """An order outcome is pending: the order consumer, a replay. Wakes the orders relay."""
    REFUNDS = "payrelay_refunds"
    """A refund is requested: the outcome consumer, a replay. Wakes the refunder."""


class Wakeups(Protocol):
    async def listen(
        self, wakes: Mapping[WakeChannel, asyncio.Event], *, stop: asyncio.Event
    ) -> None:
        """Set `wakes[channel]` whenever work on `channel` is committed, until `stop` is set.

        Returns only once `stop` is set. A lost connection is logged once, retried with
        backoff, and every event is set when it is back (news sent meanwhile was missed).
        """
        ...
