"""Where a chaos run keeps state and messages: scratch databases and a broker prefix on
given servers, or two SQLite files and the local transport.

Each is a context manager that leaves nothing behind. A later backing that starts private
server instances (a PostgreSQL cluster made with `initdb` on a free port, a RabbitMQ node
of its own) yields the same `Backing` with `can_stop_servers` set, so the faults that take
a server down know they may.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from payrelay.adapters.storage.provision import scratch_databases
from payrelay.adapters.transports.rabbitmq import RabbitMQTransport

CONSUMER_RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
"""A consumer's retries span ~40 s, longer than any outage a run injects; the broker has
one retry queue per delay, which the cleanup must know to delete them all."""


@dataclass(frozen=True, slots=True)
class Backing:
    payments_database_url: str
    orders_database_url: str
    broker_url: str
    """"local", or the amqp:// URL of the broker."""
    broker_prefix: str = ""
    postgres_admin_url: str | None = None
    """A URL to the server's maintenance database, for `pg_terminate_backend`."""
    can_stop_servers: bool = False
    """True only for private server instances: stopping a shared one disturbs others."""

    @property
    def embedded(self) -> bool:
        return self.broker_url == "local"

    def env(self) -> dict[str, str]:
        """The PAYRELAY_* settings that point a payrelay process here."""
        env = {
            "PAYRELAY_PAYMENTS_DATABASE_URL": self.payments_database_url,
            "PAYRELAY_ORDERS_DATABASE_URL": self.orders_database_url,
            "PAYRELAY_BROKER_URL": self.broker_url,
            "PAYRELAY_CONSUMER_RETRY_DELAYS": ",".join(map(str, CONSUMER_RETRY_DELAYS)),
        }
        if self.broker_prefix:
            env["PAYRELAY_BROKER_NAME_PREFIX"] = self.broker_prefix
        return env


@contextlib.asynccontextmanager
async def embedded_files(data_dir: Path) -> AsyncIterator[Backing]:
    """Two SQLite files in `data_dir` and the in-process transport."""
    yield Backing(
        payments_database_url=f"sqlite+aiosqlite:///{data_dir / 'payments.db'}",
        orders_database_url=f"sqlite+aiosqlite:///{data_dir / 'orders.db'}",
        broker_url="local",
    )


@contextlib.asynccontextmanager
async def given_servers(postgres_url: str, rabbitmq_url: str) -> AsyncIterator[Backing]:
    """Scratch databases on `postgres_url` and a unique prefix on `rabbitmq_url`; both
    removed afterwards, whatever happened."""
    prefix = f"payrelay-chaos-{uuid.uuid4().hex[:8]}."
    async with scratch_databases(postgres_url, ["payrelay_chaos"] * 2) as (payments, orders):
        try:
            yield Backing(
                payments_database_url=payments,
                orders_database_url=orders,
                broker_url=rabbitmq_url,
                broker_prefix=prefix,
                postgres_admin_url=postgres_url,
            )
        finally:
            # Never connected: deleting needs only the names, which the prefix determines.
            await RabbitMQTransport(
                rabbitmq_url, name_prefix=prefix, retry_delays=CONSUMER_RETRY_DELAYS
            ).delete_topology()
