"""The naive pattern deployed for one scenario, beside the same gateway simulator as payrelay.

A scratch orders database at payrelay's own schema (its migrations), seeded the way
payrelay's steps are (`Deployment.seed`: pending orders, an approved payment for each in
the in-process simulator, which sends no webhook of its own), a unique work queue, the
naive order service and the naive webhook server as processes of their own. Everything is
stopped, dropped and deleted at the end of the block.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from benchmarks.deployments import Deployment
from benchmarks.harness import SECRET, TOKEN, Children, children, wait_port_file, wait_ready
from benchmarks.slow_orders import slow_order_updates
from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.adapters.storage.migrations import Schema, upgrade_database
from payrelay.bootstrap import scratch_databases
from payrelay.domain.order import OrderStatus
from payrelay.entrypoints.http_server import EmbeddedServer
from payrelay.simulator.app import create_app as create_simulator_app
from payrelay.simulator.state import GatewaySimulator

__all__ = ["NaiveStack", "Tally", "naive_stack"]

NAIVE = "naive"


@dataclass(frozen=True)
class Tally:
    """What the orders database says about the measured orders."""

    pending: int
    updated_twice: int  # updated two times or more
    most_updates: int
    updates: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


ORDER_SERVICE = "order-service"


@dataclass
class NaiveStack:
    """The running naive side: where to send webhooks, the order service to kill, a tally."""

    deployment: Deployment  # its payments_url is the naive webhook server's
    procs: Children
    ready_file: Path  # the order service writes its pid there once it consumes

    @property
    def webhooks_url(self) -> str:
        return self.deployment.payments_url

    async def start_order_service(self, spec: Path) -> None:
        self.procs.start(ORDER_SERVICE, [sys.executable, "-m",
                                         "benchmarks.naive.order_service", str(spec)])
        await wait_port_file(self.ready_file, self.procs)

    async def kill_order_service(self) -> None:
        """SIGKILL, with whatever messages it holds: no-ack means the broker forgot them."""
        await self.procs.stop(ORDER_SERVICE, signal.SIGKILL)
        self.ready_file.unlink()

    async def restart_order_service(self) -> None:
        """As a supervisor would, with the same arguments; back once it consumes again."""
        self.procs.restart(ORDER_SERVICE)
        await wait_port_file(self.ready_file, self.procs)

    async def tally(self, order_ids: list[str]) -> Tally:
        """Pending, updated twice, most and all updates: `version` starts at 1, +1 each."""
        o = t.orders.c
        query = select(
            func.count().filter(o.status == OrderStatus.PENDING_PAYMENT),
            func.count().filter(o.version >= 3),
            func.coalesce(func.max(o.version), 1) - 1,
            func.coalesce(func.sum(o.version - 1), 0),
        ).where(o.order_id.in_(order_ids))
        async with self.deployment.orders_db.read() as conn:
            row = (await conn.execute(query)).one()
        return Tally(*(int(v) for v in row))


async def delete_queue(rabbitmq_url: str, queue: str) -> None:
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def naive_stack(work_dir: Path, *, postgres_url: str, rabbitmq_url: str,
                      rpc_timeout: float, slow_update_seconds: float = 0.0
                      ) -> AsyncIterator[NaiveStack]:
    """The naive webhook server and order service, running, with the simulator beside them."""
    simulator = GatewaySimulator(access_token=TOKEN, webhook_secret=SECRET)
    queue = f"payrelay-bench-naive-{uuid.uuid4().hex[:8]}.orders"
    async with (
        simulator, EmbeddedServer(create_simulator_app(simulator)) as sim_server,
        scratch_databases(postgres_url, ["payrelay_bench_naive"]) as (orders_url,),
    ):
        await upgrade_database(orders_url, Schema.ORDERS)
        if slow_update_seconds:
            await slow_order_updates(orders_url, slow_update_seconds)
        orders_db = Database(orders_url)
        try:
            async with children({}, work_dir) as procs:
                url = await start_webhook_server(
                    procs, gateway_url=sim_server.base_url, rabbitmq_url=rabbitmq_url,
                    queue=queue, rpc_timeout=rpc_timeout)
                ready = procs.log_dir / "order-service.ready"
                stack = NaiveStack(Deployment(NAIVE, url, orders_db, simulator, processes=2),
                                   procs, ready)
                await stack.start_order_service(order_spec(
                    procs.log_dir, rabbitmq_url=rabbitmq_url, queue=queue,
                    orders_url=orders_url, ready_file=ready))
                yield stack
        finally:
            await orders_db.dispose()
            await delete_queue(rabbitmq_url, queue)


def order_spec(log_dir: Path, *, rabbitmq_url: str, queue: str, orders_url: str,
               ready_file: Path) -> Path:
    spec = log_dir / "order-service.json"
    dsn = make_url(orders_url).set(drivername="postgresql")  # asyncpg's own form
    spec.write_text(json.dumps({
        "rabbitmq_url": rabbitmq_url, "queue": queue, "ready_file": str(ready_file),
        "orders_db_url": dsn.render_as_string(hide_password=False)}))
    return spec


async def start_webhook_server(procs: Children, *, gateway_url: str, rabbitmq_url: str,
                               queue: str, rpc_timeout: float) -> str:
    """Its base URL, once it answers."""
    port_file, spec = procs.log_dir / "webhooks.port", procs.log_dir / "webhooks.json"
    spec.write_text(json.dumps({
        "gateway_url": gateway_url, "token": TOKEN, "secret": SECRET,
        "rabbitmq_url": rabbitmq_url, "queue": queue, "rpc_timeout": rpc_timeout,
        "port_file": str(port_file)}))
    procs.start("webhooks", [sys.executable, "-m", "benchmarks.naive.webhook_server",
                             str(spec)])
    url = f"http://127.0.0.1:{await wait_port_file(port_file, procs)}"
    await wait_ready([f"{url}/readyz"], procs)
    return url
