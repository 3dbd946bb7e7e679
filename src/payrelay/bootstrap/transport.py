"""The broker: the in-process transport, or RabbitMQ (in NestJS mode, NestJS's packets)."""

from __future__ import annotations

from payrelay.adapters.transports.local import LocalTransport
from payrelay.commands import utc_now
from payrelay.config import Settings
from payrelay.failure_log import FailureLog
from payrelay.messaging import STANDARD_SUBSCRIPTIONS
from payrelay.ports import Clock, Subscription, Transport
from payrelay.ports.metrics import Metrics, NoMetrics

__all__ = ["build_transport"]


async def build_transport(
    settings: Settings, *, clock: Clock = utc_now,
    subscriptions: tuple[Subscription, ...] = STANDARD_SUBSCRIPTIONS,
    metrics: Metrics | None = None,
) -> Transport:
    """The in-process transport for "local", otherwise RabbitMQ, connected, with the
    exchanges and `subscriptions`' queues declared."""
    url = settings.broker_url.get_secret_value()
    failure_log = FailureLog(clock, metrics=metrics or NoMetrics())
    if url == "local" and settings.nestjs_topology() is None:
        return LocalTransport(schedule=settings.consumer_retry_schedule(),
                              failure_log=failure_log, clock=clock)
    if not url.startswith(("amqp://", "amqps://")):
        raise ValueError("PAYRELAY_BROKER_URL must be amqp://, or 'local' outside NestJS mode")
    from payrelay.adapters.transports.nestjs_packets import connect_rabbitmq

    return await connect_rabbitmq(  # in NestJS mode, to the NestJS service's queue
        url, prefetch=settings.consumer_prefetch, name_prefix=settings.broker_name_prefix,
        retry_delays=settings.consumer_retry_schedule().delays, subscriptions=subscriptions,
        clock=clock, nestjs=settings.nestjs_topology(), failure_log=failure_log,
    )
