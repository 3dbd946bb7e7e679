"""Where a chaos run keeps state and messages: a private PostgreSQL cluster and RabbitMQ
node of the run's own (the default), scratch databases and a broker prefix on given
servers, or two SQLite files and the local transport.

Each is a context manager that leaves nothing behind. A private server is named in the
`Backing` (`postgres`, `rabbitmq`), so the faults that take a server down can reach it;
a given one never is, so they cannot.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from payrelay.adapters.storage.provision import scratch_databases
from payrelay.adapters.transports.rabbitmq import RabbitMQTransport
from payrelay.chaos.rabbitmq_node import PrivateRabbitMQ, private_rabbitmq
from payrelay.chaos.servers import PrivatePostgres, private_postgres

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
    postgres: PrivatePostgres | None = None
    """The run's own cluster, which outages may stop; None on a given server."""
    rabbitmq: PrivateRabbitMQ | None = None
    """The run's own broker node, which outages may stop; None on a given broker."""

    @property
    def embedded(self) -> bool:
        return self.broker_url == "local"

    @property
    def can_stop_servers(self) -> bool:
        """True only with a private instance: stopping a shared server disturbs others."""
        return self.postgres is not None or self.rabbitmq is not None

    def describe(self) -> dict[str, str]:
        """Which servers the run used, and how long the private ones took to start."""
        if self.embedded:
            return {}
        pg, mq = self.postgres, self.rabbitmq
        return {
            "PostgreSQL": f"private cluster on :{pg.port}, started in {pg.started_in:.1f} s "
                          "(initdb + pg_ctl start)" if pg else "given server (scratch databases)",
            "RabbitMQ": f"private node {mq.node} on :{mq.port}, started in "
                        f"{mq.started_in:.1f} s" if mq else "given broker (a unique prefix)",
        }

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
async def server_backing(
    log_dir: Path, *, postgres_url: str | None, rabbitmq_url: str | None
) -> AsyncIterator[Backing]:
    """PostgreSQL + RabbitMQ: a private instance of each whose URL is None, else the given
    server; the private ones are stopped and deleted afterwards, whatever happened."""
    async with contextlib.AsyncExitStack() as stack:
        cluster = node = None
        if postgres_url is None:
            cluster = await stack.enter_async_context(private_postgres(log_dir))
            payments, orders = await cluster.create_databases(["payments", "orders"])
            postgres_url = cluster.url
        else:
            payments, orders = await stack.enter_async_context(
                scratch_databases(postgres_url, ["payrelay_chaos"] * 2))
        if rabbitmq_url is None:
            node = await stack.enter_async_context(private_rabbitmq(log_dir))
            rabbitmq_url, prefix = node.url, ""
        else:
            prefix = f"payrelay-chaos-{uuid.uuid4().hex[:8]}."
            stack.push_async_callback(_delete_topology, rabbitmq_url, prefix)
        yield Backing(
            payments_database_url=payments, orders_database_url=orders,
            broker_url=rabbitmq_url, broker_prefix=prefix, postgres_admin_url=postgres_url,
            postgres=cluster, rabbitmq=node,
        )


async def _delete_topology(rabbitmq_url: str, prefix: str) -> None:
    # Never connected: deleting needs only the names, which the prefix determines.
    await RabbitMQTransport(
        rabbitmq_url, name_prefix=prefix, retry_delays=CONSUMER_RETRY_DELAYS
    ).delete_topology()
