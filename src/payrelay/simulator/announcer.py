"""Who hears what the simulator did, and what it does later on its own.

A payment's webhooks go out through the Notifier, unless the payment was silenced (all
its notifications lost, counted as dropped). Changes the simulator makes later by itself
(a pending payment approved after a delay) run as timers here, so that `settle()` can
wait for both and `stop()` can cancel both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from payrelay.simulator.notifier import Notifier
from payrelay.simulator.records import Payment
from payrelay.simulator.stats import SimulatorStats


class Announcer:
    """Sends payment notifications and runs scheduled changes; `start()` before use."""

    def __init__(self, notifier: Notifier, stats: SimulatorStats) -> None:
        self._notifier = notifier
        self._stats = stats
        self._timers: set[asyncio.Task[None]] = set()
        self._silenced: set[int] = set()  # payments whose webhooks are all lost

    async def start(self) -> None:
        await self._notifier.start()

    async def stop(self) -> None:
        """Cancel scheduled changes and pending deliveries; close the HTTP client."""
        timers = list(self._timers)
        for timer in timers:
            timer.cancel()
        await asyncio.gather(*timers, return_exceptions=True)
        await self._notifier.stop()

    async def settle(self) -> None:
        """Wait until scheduled changes ran and every notification was delivered or given up."""
        while self._timers:
            await asyncio.wait(set(self._timers))
        await self._notifier.wait_idle()

    @property
    def in_flight(self) -> int:
        """Scheduled changes plus notification copies still on their way (or retrying)."""
        return len(self._timers) + self._notifier.in_flight

    @property
    def crashes(self) -> list[BaseException]:
        return list(self._notifier.crashes)

    def silence(self, payment_id: int) -> None:
        """No notification about this payment will ever be sent."""
        self._silenced.add(payment_id)

    def announce(self, payment: Payment, action: str) -> None:
        """Notify the payment's notification_url, if it has one, of `action`."""
        url = payment.preference.notification_url
        if url and payment.id in self._silenced:
            self._stats.notifications += 1
            self._stats.dropped += 1
        elif url:
            self._notifier.notify(payment_id=payment.id, action=action, notification_url=url)

    def later(self, delay: float, change: Callable[[], None]) -> None:
        """Run `change` after `delay` seconds, unless stopped first."""
        timer = asyncio.create_task(self._run_later(delay, change))
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)

    async def _run_later(self, delay: float, change: Callable[[], None]) -> None:
        await asyncio.sleep(delay)
        change()
