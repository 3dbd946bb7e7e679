"""Holding claimed work: a heartbeat renews the claims while a worker has the work in hand.

A claim is a short lease (`LEASE`), so the rows of a worker that is killed fall due again
for another worker within seconds. A worker that is alive renews its claims every third of
a lease for as long as the work is in hand, so slow work (a gateway that takes 20 s to
answer) is never claimed by a second worker meanwhile:

    batch = await queue.claim_due(limit=100, now=clock(), lease=LEASE)
    async with holding(queue, batch, lease=LEASE, clock=clock):
        ...  # the gateway calls, the publish, the transaction that finishes the work
    await queue.record_failures(failed, now=clock())  # after the block, never inside it

The order matters. A heartbeat that lands after the row was finished (marked processed,
sent...) changes nothing, since only waiting rows are extended. But a retry is still a
waiting row: a heartbeat landing after `record_failures` would move its retry time back to
the end of a lease. So the block's exit waits for a heartbeat in flight to end, and what
keeps a row waiting (`record_failures`, `postpone`) is written after the block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import TypeVar

from payrelay.domain.errors import PayrelayError
from payrelay.ports import Clock, WorkQueue

__all__ = ["LEASE", "holding"]

log = logging.getLogger(__name__)
W = TypeVar("W")

LEASE = timedelta(seconds=3)
"""How long a claim lasts unless renewed: how long a dead worker's rows wait."""


@contextlib.asynccontextmanager
async def holding(
    queue: WorkQueue[W], work: Sequence[W], *, lease: timedelta, clock: Clock
) -> AsyncIterator[None]:
    """Renew the claims on `work` every `lease / 3` until the block ends."""
    if not work:
        yield
        return
    stop = asyncio.Event()
    beat = asyncio.create_task(_renew(queue, list(work), lease, clock, stop))
    try:
        yield
    finally:
        stop.set()
        # Not cancelled: an extend in flight ends before anything after the block is
        # written (see the module docstring). It is one short UPDATE.
        await beat


async def _renew(
    queue: WorkQueue[W], work: list[W], lease: timedelta, clock: Clock, stop: asyncio.Event
) -> None:
    every = lease.total_seconds() / 3
    failing = False
    while not await _stopped_within(stop, every):
        try:
            await queue.extend(work, until=clock() + lease)
        except Exception as exc:  # the worker goes on; only its claims may lapse
            # A claim that lapses lets another worker do the same work again, which the
            # inboxes, versioned saves and refund idempotency keys already make harmless.
            if not failing:
                log.log(
                    logging.WARNING if isinstance(exc, PayrelayError) else logging.ERROR,
                    "heartbeat of %d claimed rows failed: %s; they may be claimed again "
                    "once their lease ends", len(work), exc,
                    exc_info=not isinstance(exc, PayrelayError),
                )
            failing = True
        else:
            if failing:
                log.warning("heartbeat of %d claimed rows works again", len(work))
            failing = False


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
