"""One-off commands wired from settings: migrations, dead letters, the broker topology.

Entrypoints reach them through `payrelay.bootstrap`, which re-exports them; they live apart
so that bootstrap stays the System's wiring.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import UTC, datetime

from payrelay.adapters.storage.dead_letters import open_dead_letter_box
from payrelay.adapters.storage.migrations import Schema, upgrade_database
from payrelay.config import Settings
from payrelay.ports import Clock, DeadLetterBox
from payrelay.system import Side

__all__ = ["database_url", "dead_letter_box", "delete_broker_topology", "migrate", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC)


async def migrate(
    settings: Settings, *, sides: Iterable[Side] = tuple(Side), explicit: bool = False
) -> set[Side]:
    """What `payrelay migrate` does: each side's database to head; the sides migrated.

    With no orders database configured the orders side is skipped, unless it was asked for
    `explicit`ly, which is a setting to fix (ValueError).
    """
    done: set[Side] = set()
    for side in (s for s in Side if s in set(sides)):
        url = database_url(settings, side, required=explicit)
        if url is not None:
            await upgrade_database(url, Schema(side.value))
            done.add(side)
    return done


def database_url(settings: Settings, side: Side, *, required: bool) -> str | None:
    """`side`'s database URL; None when the orders one is not configured and not required."""
    if side is Side.PAYMENTS:
        return settings.payments_database_url
    if settings.orders_database_url is None and required:
        raise ValueError("PAYRELAY_ORDERS_DATABASE_URL is empty: this deployment has no "
                         "orders database (set it to run order-side roles or migrate it)")
    return settings.orders_database_url


def dead_letter_box(
    settings: Settings, *, clock: Clock = utc_now
) -> contextlib.AbstractAsyncContextManager[DeadLetterBox]:
    """Both databases' dead letters, once each is checked to be at this code's schema."""
    return open_dead_letter_box(
        payments_url=settings.payments_database_url, orders_url=settings.orders_database_url,
        clock=clock,
    )


async def delete_broker_topology(broker_url: str, name_prefix: str) -> None:
    """Delete every RabbitMQ exchange and queue named under `name_prefix`."""
    from payrelay.adapters.transports.rabbitmq import RabbitMQTransport

    # Never connected: deleting needs only the names, which the prefix determines.
    await RabbitMQTransport(broker_url, name_prefix=name_prefix).delete_topology()
