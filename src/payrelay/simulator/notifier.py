"""Webhook delivery the way MercadoPago does it: signed, retried, and at times badly.

Each notification is planned when it is produced (dropped? how many copies? how late?),
from the fault dice, in call order, so a seed reproduces the same plan. Each copy then runs
as its own task: a receiver that hangs or fails delays only its own retries, never the
simulator's API answers nor other notifications. Retries resend the same body and the same
x-request-id, signed again with a fresh ts and whatever secret is current by then. In the
legacy IPN style there is nothing to sign: the query string names the payment, and that is all.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import httpx

from payrelay.simulator.faults import FaultDice
from payrelay.simulator.jsonio import dumps, iso
from payrelay.simulator.signing import x_signature
from payrelay.simulator.stats import SimulatorStats

_REORDER_BATCH = 4


class NotificationStyle(StrEnum):
    WEBHOOK = "webhook"
    """`?data.id=N&type=payment`, a JSON body, signed: `x-signature` and `x-request-id`."""
    IPN = "ipn"
    """Legacy IPN: `?topic=payment&id=N`, no body, no signature (none could be checked)."""


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How the simulator delivers: in which style, and how hard it tries (exponential
    backoff, capped, bounded attempts)."""

    base_delay: float = 0.1
    max_delay: float = 2.0
    max_attempts: int = 8
    timeout: float = 5.0
    style: NotificationStyle = NotificationStyle.WEBHOOK

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (counting from 1)."""
        return float(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    payment_id: str
    url: str
    body: bytes
    request_id: str
    style: NotificationStyle = NotificationStyle.WEBHOOK


def notification_target(
    notification_url: str, payment_id: str, style: NotificationStyle = NotificationStyle.WEBHOOK
) -> str:
    """MercadoPago adds the resource to the configured URL's query string."""
    separator = "&" if "?" in notification_url else "?"
    if style is NotificationStyle.IPN:
        return f"{notification_url}{separator}topic=payment&id={payment_id}"
    return f"{notification_url}{separator}data.id={payment_id}&type=payment"


class Notifier:
    """Sends payment notifications on background tasks; `start()` before, `stop()` after."""

    def __init__(
        self,
        *,
        dice: Callable[[], FaultDice],
        secret: Callable[[], str],
        clock: Callable[[], datetime],
        policy: DeliveryPolicy,
        stats: SimulatorStats,
        user_id: int,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._dice, self._secret, self._clock = dice, secret, clock
        self._policy, self._stats, self._user_id = policy, stats, user_id
        self._transport = transport
        self._ids = itertools.count(30_000_000_001)
        self._client: httpx.AsyncClient | None = None
        self._backlog: list[tuple[Notification, float]] = []  # produced before start()
        self._held: list[tuple[Notification, float]] = []  # the reorder buffer
        self._flush: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending = 0  # copies not finished yet, wherever they wait
        self._idle = asyncio.Event()
        self._idle.set()
        self.crashes: list[BaseException] = []
        """Unexpected errors inside delivery tasks (bugs), kept so a test can assert on none."""

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport, timeout=self._policy.timeout
            )
        backlog, self._backlog = self._backlog, []
        for notification, delay in backlog:
            self._launch(notification, delay)

    async def stop(self) -> None:
        """Cancel what is still pending (counted as abandoned) and close the client."""
        if self._flush is not None:
            self._flush.cancel()
        waiting = self._held + self._backlog
        self._held, self._backlog = [], []
        self._stats.abandoned += len(waiting)
        self._finish(len(waiting))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *filter(None, [self._flush]), return_exceptions=True)
        self._flush = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def in_flight(self) -> int:
        """Copies produced and not yet delivered, failed or dropped (retries included)."""
        return self._pending

    async def wait_idle(self) -> None:
        """Return once every copy produced so far has been delivered, failed or dropped."""
        await self._idle.wait()

    def notify(self, *, payment_id: int, action: str, notification_url: str) -> None:
        """Produce one notification and plan its delivery; never blocks."""
        notification = self._compose(str(payment_id), action, notification_url)
        self._stats.notifications += 1
        dice = self._dice()
        delays = dice.delivery_delays(notification.payment_id)
        if not delays:
            self._stats.dropped += 1
            return
        self._stats.duplicated += len(delays) - 1
        self._pending += len(delays)
        self._idle.clear()
        for delay in delays:
            if dice.faults.reorder:
                self._hold(notification, delay, dice)
            else:
                self._launch(notification, delay)

    def _compose(self, payment_id: str, action: str, notification_url: str) -> Notification:
        notification_id = next(self._ids)
        style = self._policy.style
        if style is NotificationStyle.IPN:
            url = notification_target(notification_url, payment_id, style)
            return Notification(notification_id, payment_id, url, b"", "", style)
        body = {
            "id": notification_id,
            "live_mode": False,
            "type": "payment",
            "date_created": iso(self._clock()),
            "user_id": self._user_id,
            "api_version": "v1",
            "action": action,
            "data": {"id": payment_id},
        }
        return Notification(
            id=notification_id,
            payment_id=payment_id,
            url=notification_target(notification_url, payment_id),
            body=dumps(body),
            request_id=str(uuid.uuid4()),
        )

    def _hold(self, notification: Notification, delay: float, dice: FaultDice) -> None:
        self._stats.reordered += 1
        self._held.append((notification, delay))
        if len(self._held) >= _REORDER_BATCH:
            self._release(dice)
        elif self._flush is None:
            self._flush = asyncio.create_task(self._release_later(dice))

    async def _release_later(self, dice: FaultDice) -> None:
        await asyncio.sleep(dice.faults.reorder_window)
        self._flush = None  # cleared before releasing, so the release does not cancel us
        self._release(dice)

    def _release(self, dice: FaultDice) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        batch, self._held = self._held, []
        dice.shuffle(batch)
        for notification, delay in batch:
            self._launch(notification, delay)

    def _launch(self, notification: Notification, delay: float) -> None:
        if self._client is None:
            self._backlog.append((notification, delay))
            return
        task = asyncio.create_task(self._deliver(self._client, notification, delay))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            self._stats.abandoned += 1
        elif (error := task.exception()) is not None:
            self._stats.failed += 1
            self.crashes.append(error)
        self._finish(1)

    def _finish(self, copies: int) -> None:
        self._pending -= copies
        if self._pending <= 0:
            self._pending = 0
            self._idle.set()

    async def _deliver(self, client: httpx.AsyncClient, n: Notification, delay: float) -> None:
        if delay > 0:
            self._stats.delayed += 1
            await asyncio.sleep(delay)
        for attempt in range(1, self._policy.max_attempts + 1):
            if await self._attempt(client, n):
                self._stats.delivered += 1
                return
            self._stats.failed_attempts += 1
            if attempt < self._policy.max_attempts:
                await asyncio.sleep(self._policy.backoff(attempt))
        self._stats.failed += 1

    async def _attempt(self, client: httpx.AsyncClient, n: Notification) -> bool:
        self._stats.sent += 1
        try:
            response = await client.post(n.url, content=n.body, headers=self._headers(n))
        except httpx.HTTPError:
            return False  # counted by the caller as a failed attempt, then retried
        return response.is_success

    def _headers(self, n: Notification) -> dict[str, str]:
        """A webhook's headers, signed now (fresh ts, current secret); an IPN has none."""
        if n.style is NotificationStyle.IPN:
            return {}
        ts = int(self._clock().timestamp())
        signature = x_signature(
            self._secret(), data_id=n.payment_id, request_id=n.request_id, ts=ts
        )
        return {
            "content-type": "application/json",
            "x-request-id": n.request_id,
            "x-signature": signature,
        }
