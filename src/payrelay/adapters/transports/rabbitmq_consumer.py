"""Batched consumption for the RabbitMQ transport.

Deliveries are batched, the handler commits a batch, only then is each message acked. A
failed batch is retried message by message, so one poison message cannot take its
neighbours down with it; what becomes of a message that fails on its own is the caller's
`on_failure` (rabbitmq_failures.py: a delayed retry, a dead letter, or back to its queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from payrelay.adapters.transports.consumer_failures import (
    MAX_ERROR_LENGTH,
    Refusal,
    failures_in,
)
from payrelay.ports import BatchHandler, Delivery

__all__ = [
    "BROKER_ERRORS",
    "MAX_ERROR_LENGTH",
    "BatchConsumer",
    "OnFailure",
    "ToDelivery",
    "channel_alive",
    "settle",
]

log = logging.getLogger(__name__)

# What a lost connection or channel looks like from aio-pika/aiormq.
BROKER_ERRORS = (AMQPError, ChannelInvalidStateError, OSError)

ToDelivery = Callable[[AbstractIncomingMessage], Delivery]
# (the message that failed on its own, the handler's failure) -> settle it somehow
OnFailure = Callable[[AbstractIncomingMessage, Refusal], Awaitable[None]]


class BatchConsumer:
    """One queue's deliveries in, handler batches out; acks only after the handler."""

    def __init__(
        self,
        handler: BatchHandler,
        *,
        batch_max: int,
        linger: float,
        to_delivery: ToDelivery,
        on_failure: OnFailure,
        failure_pause: float = 0.0,
    ) -> None:
        self._handler = handler
        self._batch_max = batch_max
        self._linger = linger
        self._to_delivery = to_delivery
        self._on_failure = on_failure
        self._failure_pause = failure_pause
        self._arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._busy = asyncio.Lock()  # held from handing a batch over to settling it

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        # Never blocks: the broker's prefetch bounds how many can be waiting here.
        self._arrived.put_nowait(message)

    def start(self, name: str) -> None:
        self._task = asyncio.create_task(self._run(), name=name)
        self._task.add_done_callback(_report_crash)

    async def stop(self) -> None:
        """Let the batch in hand be handled and settled, then stop taking new ones.

        Cancelling mid-batch would be safe (its messages are redelivered) but would hand
        every batch in flight at a deploy to the inboxes a second time.
        """
        if self._task is None or self._task.done():  # a crash was logged by _report_crash
            return
        async with self._busy:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            arrived = await self._next_batch()
            async with self._busy:
                batch = [m for m in arrived if channel_alive(m)]
                failed = await self._deliver(batch) if batch else False
            if failed and self._failure_pause > 0:
                # Outside the lock, so `stop` cancels the pause instead of waiting it out.
                await asyncio.sleep(self._failure_pause)

    async def _next_batch(self) -> list[AbstractIncomingMessage]:
        """Wait for one message, then take what else arrives within `linger`."""
        batch = [await self._arrived.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._linger
        while len(batch) < self._batch_max:
            if not self._arrived.empty():
                batch.append(self._arrived.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                # A timeout never loses a message: Queue.get only removes it on success.
                async with asyncio.timeout(remaining):
                    batch.append(await self._arrived.get())
            except TimeoutError:
                break
        return batch

    async def _deliver(self, batch: list[AbstractIncomingMessage]) -> bool:
        """Hand the batch over and settle every message; True if any of them failed."""
        failures = await failures_in(batch, self._failure)
        for message, error in zip(batch, failures, strict=True):
            if error is None:
                await settle(message, ack=True)
            else:
                await self._on_failure(message, error)
        return any(error is not None for error in failures)

    async def _failure(self, batch: Sequence[AbstractIncomingMessage]) -> Refusal | None:
        """None if the handler committed the batch, else its failure (logged by on_failure)."""
        try:
            await self._handler([self._to_delivery(m) for m in batch])
        except Exception as exc:
            log.debug("handler failed on %d messages (first %s): %r",
                      len(batch), batch[0].message_id, exc)
            return Refusal.of(exc)
        return None


async def settle(message: AbstractIncomingMessage, *, ack: bool) -> None:
    """Ack, or reject back into its queue."""
    try:
        if ack:
            await message.ack()
        else:
            await message.reject(requeue=True)
    except BROKER_ERRORS as exc:
        # The channel that delivered it is gone, and with it the broker's record of this
        # delivery: the message is already back in its queue and will be delivered again
        # (a handled one then meets its inbox row).
        log.info("cannot settle %s, the broker will redeliver it: %r", message.message_id, exc)


def channel_alive(message: AbstractIncomingMessage) -> bool:
    """False for a message from a channel that has closed; the broker redelivers it."""
    try:
        message.channel  # noqa: B018 - the property raises once the channel is closed
    except ChannelInvalidStateError:
        return False
    return True


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("consumer %s stopped: messages stay unacked until the connection closes",
                  task.get_name(), exc_info=task.exception())
