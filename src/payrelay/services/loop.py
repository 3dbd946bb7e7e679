"""How a worker keeps a `run_once` step going: wake on news, poll as a fallback, survive."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

from payrelay.domain.errors import PayrelayError
from payrelay.domain.retry import Backoff

log = logging.getLogger(__name__)
_FAILURE_BACKOFF = Backoff(base=0.05, cap=5.0)


async def run_loop(
    name: str,
    step: Callable[[], Awaitable[int]],
    *,
    wake: asyncio.Event,
    stop: asyncio.Event,
    poll_interval: float,
    backoff: Backoff = _FAILURE_BACKOFF,
) -> None:
    """Call `step` (which returns how much it did) until `stop` is set.

    Busy: go again at once. Idle: sleep until woken or `poll_interval` passes (another
    process may have written work). Failing: back off; the work stays stored and due, so a
    failed step loses nothing.
    """
    rng = random.Random()
    failures = 0
    while not stop.is_set():
        wake.clear()  # before the step: news that arrives during it must not be lost
        try:
            done = await step()
            failures = 0
        except Exception as exc:  # the work stays stored and due; only this try is over
            failures += 1
            delay = backoff.delay(failures, rng).total_seconds()
            if isinstance(exc, PayrelayError):
                log.warning("%s: %s; next try in %.2fs", name, exc, delay)
            else:
                log.exception("%s failed unexpectedly; next try in %.2fs", name, delay)
            await _sleep_unless(stop, delay)
            continue
        if not done:
            await _wait_any(wake, stop, poll_interval)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _wait_any(wake: asyncio.Event, stop: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.create_task(wake.wait()), asyncio.create_task(stop.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
