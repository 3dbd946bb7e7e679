"""What becomes of a message its consumer failed on, and how the DLQ reports it.

A message that fails on its own is never requeued (it would come straight back, at once,
and spend the queue's delivery limit on one outage): a copy goes to `<queue>.retry.<n>`,
which holds it for the n-th delay of the schedule and then returns it to the work queue;
after the last step the copy goes to `<queue>.dlq` with its reason. The original is acked
only once the broker confirmed the copy, so the message is never lost between the two.

The quorum queue's delivery limit stays as the backstop for a message that never gets
settled at all (the process dies on it every time): the broker moves it to the DLQ itself,
and `dead_letter_delivery` reads that verdict from its x-death record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from payrelay.adapters.transports.consumer_failures import (
    ATTEMPTS_HEADER,
    ERROR_HEADER,
    EXCHANGE_HEADER,
    MAX_ERROR_LENGTH,
    REASON_HEADER,
    RETRIES_EXHAUSTED,
    RETRIES_HEADER,
    ROUTING_KEY_HEADER,
    WAITS_HEADER,
    ConsumerFailures,
    Refusal,
    Verdict,
)
from payrelay.adapters.transports.rabbitmq_consumer import BROKER_ERRORS, channel_alive, settle
from payrelay.adapters.transports.rabbitmq_topology import (
    DEAD_LETTER_EXCHANGE,
    RETRY_EXCHANGE,
    Topology,
)
from payrelay.domain.retry import RetrySchedule
from payrelay.failure_log import FailureLog
from payrelay.ports import Clock, Delivery, Subscription

__all__ = [
    "ATTEMPTS_HEADER",
    "DELIVERY_LIMIT_REACHED",
    "ERROR_HEADER",
    "EXCHANGE_HEADER",
    "REASON_HEADER",
    "RETRIES_EXHAUSTED",
    "RETRIES_HEADER",
    "ROUTING_KEY_HEADER",
    "WAITS_HEADER",
    "Republish",
    "RetryOrDeadLetter",
    "confirmed_republish",
    "dead_letter_delivery",
    "requeue",
    "retry_count",
    "work_delivery",
]

log = logging.getLogger(__name__)

DELIVERY_LIMIT_REACHED = "delivery limit reached"

# Set by the broker for the queue a message sits in; a copy must not carry a stale one.
_BROKER_OWNED = frozenset({"x-delivery-count"})

# (prefixed exchange, routing key, message) -> True once the broker confirmed and routed it
Republish = Callable[[str, str, aio_pika.Message], Awaitable[bool]]


def confirmed_republish(channel: AbstractChannel, *, timeout: float) -> Republish:
    """Publish a consumer's copy of a message on `channel` (publisher confirms on)."""

    async def republish(exchange: str, routing_key: str, message: aio_pika.Message) -> bool:
        try:
            async with asyncio.timeout(timeout):
                target = await channel.get_exchange(exchange, ensure=False)
                result = await target.publish(message, routing_key, mandatory=True)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # our own cancellation, not aiormq dropping a closing channel's confirms
            return False
        except (TimeoutError, *BROKER_ERRORS) as exc:
            log.info("copy of %s to %s not confirmed: %r", message.message_id, routing_key, exc)
            return False
        return isinstance(result, aiormq.spec.Basic.Ack)  # not nacked, not returned

    return republish


class RetryOrDeadLetter:
    """A work queue's failure policy (`ConsumerFailures`): an outage waits in the retry
    queues without spending a step; a counted failure takes the next step; once out of
    steps (or for a permanent failure past its tries) the copy goes to the DLQ."""

    def __init__(
        self, *, topology: Topology, queue: str, republish: Republish, failure_log: FailureLog,
        clock: Clock,
    ) -> None:
        self._clock = clock
        self._topology = topology
        self._queue = queue
        self._republish = republish
        self._failures = ConsumerFailures(
            queue=queue, schedule=RetrySchedule(topology.retry_delays), failure_log=failure_log
        )

    async def __call__(self, message: AbstractIncomingMessage, refusal: Refusal) -> None:
        if not channel_alive(message):
            return  # its channel is gone: the broker redelivers it, copying would double it
        now = self._clock()
        verdict = self._failures.decide(
            refusal, retries=retry_count(message.headers),
            waits=_number(_header(message.headers, WAITS_HEADER), default=0),
            age=_age(message, now), now=now, body=message.body,
        )
        exchange, routing_key, headers = self._destination(message, refusal, verdict)
        # A crash between the confirm and the ack leaves both copies: the message is then
        # handled twice, and the inbox drops the second. The other order could lose it.
        if await self._republish(exchange, routing_key, _copy(message, headers)):
            await settle(message, ack=True)
        else:
            log.warning("could not move %s to %s: requeued", message.message_id, routing_key)
            await requeue(message, refusal)

    def _destination(
        self, message: AbstractIncomingMessage, refusal: Refusal, verdict: Verdict
    ) -> tuple[str, str, dict[str, Any]]:
        """(prefixed exchange, routing key, headers to set) for the copy `verdict` asks for."""
        topology = self._topology
        exchange = _header(message.headers, EXCHANGE_HEADER) or topology.base_name(
            message.exchange or "")
        headers: dict[str, Any] = {
            ERROR_HEADER: refusal.error,
            EXCHANGE_HEADER: exchange,
            ROUTING_KEY_HEADER: _header(message.headers, ROUTING_KEY_HEADER)
            or message.routing_key or "",
        }
        if verdict.step is None:
            headers |= verdict.dead_letter_headers(refusal, exchange=exchange)
            return topology.name(DEAD_LETTER_EXCHANGE), topology.name(self._queue), headers
        headers |= verdict.count_headers()
        return (topology.name(RETRY_EXCHANGE),
                topology.retry_queue(self._queue, verdict.step), headers)


def _age(message: AbstractIncomingMessage, now: datetime) -> timedelta:
    sent = message.timestamp
    if isinstance(sent, datetime):
        return now - (sent if sent.tzinfo else sent.replace(tzinfo=UTC))
    return timedelta(0)


async def requeue(message: AbstractIncomingMessage, refusal: Refusal) -> None:
    """Reject back into its queue (counted towards the queue's delivery limit)."""
    await settle(message, ack=False)


def work_delivery(message: AbstractIncomingMessage) -> Delivery:
    """A work queue's message as the handler sees it, wherever its retries took it."""
    headers = _text_headers(message.headers)
    return Delivery(
        message_id=message.message_id or "",
        routing_key=headers.get(ROUTING_KEY_HEADER) or message.routing_key or "",
        body=message.body,
        redelivered=bool(message.redelivered) or retry_count(message.headers) > 0,
        # e.g. x-payrelay-attempt (set by `publish`) and x-delivery-count (quorum queues)
        headers=headers,
    )


def dead_letter_delivery(
    message: AbstractIncomingMessage, *, topology: Topology, subscription: Subscription
) -> Delivery:
    """A DLQ message with its original routing key and the x-payrelay-* verdict headers.

    Copies moved here by `RetryOrDeadLetter` carry them already; a message the broker
    dead-lettered (delivery limit) gets them from its x-death record.
    """
    headers = _text_headers(message.headers)
    death = _death(message.headers, topology.name(subscription.queue))
    if REASON_HEADER not in headers:
        headers |= _broker_verdict(death, headers, topology, retry_count(message.headers))
    dead_exchange = topology.base_name(_text(death.get("exchange", "")))
    headers.setdefault(EXCHANGE_HEADER, dead_exchange or subscription.exchange)
    headers.setdefault(ERROR_HEADER, "")
    headers.setdefault(ATTEMPTS_HEADER, "1")
    keys = death.get("routing-keys")
    dead_key = _text(keys[0]) if isinstance(keys, list) and keys else ""
    return Delivery(
        message_id=message.message_id or "",
        routing_key=headers.get(ROUTING_KEY_HEADER) or dead_key or message.type or "",
        body=message.body,
        redelivered=bool(message.redelivered),
        headers=headers,
    )


def _broker_verdict(
    death: Mapping[str, Any], headers: Mapping[str, str], topology: Topology, retries: int
) -> dict[str, str]:
    reason = _text(death.get("reason", ""))
    if reason == "delivery_limit":
        deliveries = topology.delivery_limit + 1  # the limit counts the returns
        verdict = DELIVERY_LIMIT_REACHED
        error = f"delivered {deliveries} times and never settled (consumer crashed or cut off)"
    else:
        deliveries = _number(_text(death.get("count", "")), default=1)
        verdict = f"dead-lettered by the broker ({reason or 'no x-death record'})"
        error = verdict
    if headers.get(ERROR_HEADER):  # the failure of an earlier round of retries
        error = f"{error}; before that: {headers[ERROR_HEADER]}"
    return {
        REASON_HEADER: verdict,
        ERROR_HEADER: error[:MAX_ERROR_LENGTH],
        ATTEMPTS_HEADER: str(retries + deliveries),
    }


def _death(headers: Mapping[str, Any] | None, work_queue: str) -> Mapping[str, Any]:
    """The x-death entry the work queue wrote (else the latest one, else empty)."""
    deaths = (headers or {}).get("x-death")
    entries = [d for d in deaths if isinstance(d, dict)] if isinstance(deaths, list) else []
    mine = (d for d in entries if _text(d.get("queue", "")) == work_queue)
    return next(mine, entries[0] if entries else {})


def retry_count(headers: Mapping[str, Any] | None) -> int:
    """The delayed retries a message has been through (0 when unset or garbled)."""
    return _number(_header(headers, RETRIES_HEADER), default=0)


def _number(text: str, *, default: int) -> int:
    try:
        return max(int(text), 0)
    except ValueError:
        return default


def _copy(message: AbstractIncomingMessage, headers: Mapping[str, Any]) -> aio_pika.Message:
    kept = {k: v for k, v in (message.headers or {}).items() if k not in _BROKER_OWNED}
    return aio_pika.Message(
        message.body,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={**kept, **headers},
    )


def _header(headers: Mapping[str, Any] | None, name: str) -> str:
    value = (headers or {}).get(name)
    return "" if value is None else _text(value)


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes | bytearray) else str(value)


def _text_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    return {key: _text(value) for key, value in (headers or {}).items()}
