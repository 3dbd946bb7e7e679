"""payrelay started for a benchmark: as `payrelay serve` processes, beside a gateway simulator.

The simulator runs in the bench's own process, so payments can be created in it directly
(no webhook of its own: `drop_notifications`, the load generator sends them). Orders are
inserted straight into the orders database in one statement per batch: setting up 10,000
orders through the API would take longer than measuring them.

Two backends, as `payrelay demo` names them:

- `embedded`: one `payrelay serve` process (every role), two SQLite files, the local
  transport;
- `postgres+rabbitmq`: scratch databases and a unique broker prefix, with the roles split
  over four processes: payments-api; processor; both relays; both consumers.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, insert, select

from benchmarks.harness import (
    PAYRELAY,
    SECRET,
    TOKEN,
    Children,
    children,
    free_port,
    migrate,
    wait_ready,
)
from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.bootstrap import delete_broker_topology, scratch_databases
from payrelay.entrypoints.http_server import EmbeddedServer
from payrelay.simulator.app import create_app as create_simulator_app
from payrelay.simulator.state import GatewaySimulator

EMBEDDED, POSTGRES_RABBITMQ = "embedded", "postgres+rabbitmq"
SPLIT_ROLES = (
    ("payments-api",), ("processor",), ("payments-relay", "orders-relay"),
    ("order-consumer", "outcome-consumer"),
)
# The reconciler would find the bench's payments in the gateway before their webhooks are
# sent, and pay their orders early: keep it out of the way (the embedded serve runs it).
QUIET = {"PAYRELAY_RECONCILE_INTERVAL_SECONDS": "3600"}


@dataclass
class Deployment:
    backend: str
    payments_url: str
    orders_db: Database
    simulator: GatewaySimulator
    processes: int
    procs: Children
    """The payrelay processes, by name (`serve-0`...), to stop, kill or restart one."""
    layout: tuple[tuple[str, ...], ...] = ()
    """The roles of each process: `layout[i]` runs in `serve-{i}` (none for a stack that is
    not payrelay, such as the naive pattern's)."""
    env: dict[str, str] = field(default_factory=dict)
    """payrelay's settings as the processes got them (database URLs, broker prefix)."""

    def process_of(self, role: str) -> str:
        """The name of the process that runs `role`, for `procs.stop` and `procs.restart`."""
        for index, roles in enumerate(self.layout):
            if role in roles or not roles:  # () is every role, in one process
                return f"serve-{index}"
        raise KeyError(f"no process runs {role!r} on {self.backend}")

    async def seed(self, count: int) -> list[tuple[str, str]]:
        """`count` pending orders, each with an approved payment: (order id, payment id)."""
        order_ids = [str(uuid.uuid4()) for _ in range(count)]
        now = datetime.now(UTC)
        async with self.orders_db.transaction() as conn:
            for start in range(0, count, 1000):
                chunk = order_ids[start:start + 1000]
                await conn.execute(insert(t.orders), [
                    {"order_id": o, "status": "pending_payment", "total_minor": 1230,
                     "currency": "BRL", "description": "bench", "version": 1,
                     "created_at": now, "updated_at": now} for o in chunk])
                await conn.execute(insert(t.order_items), [
                    {"order_id": o, "line": 1, "sku": "BENCH", "quantity": 1,
                     "unit_price_minor": 1230} for o in chunk])
        pairs = []
        for order_id in order_ids:
            preference = self.simulator.create_preference({
                "items": [{"title": "bench", "quantity": 1, "unit_price": "12.30",
                           "currency_id": "BRL"}],
                "external_reference": order_id,
            })
            payment_id = await self.simulator.pay(preference["id"], "approve",
                                                  drop_notifications=True)
            pairs.append((order_id, str(payment_id)))
        return pairs

    async def paid_count(self) -> int:
        async with self.orders_db.read() as conn:
            count = (await conn.execute(select(func.count()).select_from(t.orders)
                                        .where(t.orders.c.status == "paid"))).scalar_one()
        return int(count)

    async def paid_at(self, order_ids: list[str]) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        async with self.orders_db.read() as conn:
            for start in range(0, len(order_ids), 500):
                rows = await conn.execute(
                    select(t.orders.c.order_id, t.orders.c.paid_at).where(
                        t.orders.c.order_id.in_(order_ids[start:start + 500]),
                        t.orders.c.status == "paid"))
                found.update({r.order_id: r.paid_at for r in rows if r.paid_at})
        return found


def _env(sim_url: str, payments_port: int, internal_port: int) -> dict[str, str]:
    return {
        **QUIET,
        "PAYRELAY_GATEWAY_BASE_URL": sim_url,
        "PAYRELAY_GATEWAY_ACCESS_TOKEN": TOKEN,
        "PAYRELAY_WEBHOOK_SECRETS": SECRET,
        "PAYRELAY_PUBLIC_URL": f"http://127.0.0.1:{payments_port}",
        "PAYRELAY_PAYMENTS_URL": f"http://127.0.0.1:{internal_port}",
    }


@contextlib.asynccontextmanager
async def backend_env(backend: str, data_dir: Path, *, postgres_url: str, rabbitmq_url: str
                      ) -> AsyncIterator[dict[str, str]]:
    """Where state and messages live, as payrelay's settings; removed afterwards."""
    if backend == EMBEDDED:
        yield {"PAYRELAY_PAYMENTS_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir}/payments.db",
               "PAYRELAY_ORDERS_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir}/orders.db",
               "PAYRELAY_BROKER_URL": "local"}
        return
    prefix = f"payrelay-bench-{uuid.uuid4().hex[:8]}."
    async with scratch_databases(postgres_url, ["payrelay_bench"] * 2) as (payments, orders):
        try:
            yield {"PAYRELAY_PAYMENTS_DATABASE_URL": payments,
                   "PAYRELAY_ORDERS_DATABASE_URL": orders,
                   "PAYRELAY_BROKER_URL": rabbitmq_url, "PAYRELAY_BROKER_NAME_PREFIX": prefix}
        finally:
            await delete_broker_topology(rabbitmq_url, prefix)


@contextlib.asynccontextmanager
async def deployed(backend: str, work_dir: Path, *, postgres_url: str, rabbitmq_url: str
                   ) -> AsyncIterator[Deployment]:
    """payrelay running on `backend` (every role), the simulator beside it."""
    simulator = GatewaySimulator(access_token=TOKEN, webhook_secret=SECRET)
    payments_port, internal_port = free_port(), free_port()
    ports = ["--payments-port", str(payments_port), "--payments-internal-port",
             str(internal_port), "--orders-port", str(free_port())]
    async with (
        simulator, EmbeddedServer(create_simulator_app(simulator)) as sim_server,
        backend_env(backend, work_dir, postgres_url=postgres_url,
                    rabbitmq_url=rabbitmq_url) as storage,
    ):
        env = {**storage, **_env(sim_server.base_url, payments_port, internal_port)}
        await migrate(env)
        orders_db = Database(env["PAYRELAY_ORDERS_DATABASE_URL"])
        try:
            async with children(env, work_dir) as procs:
                layout: tuple[tuple[str, ...], ...] = (
                    ((),) if backend == EMBEDDED else SPLIT_ROLES)
                for i, roles in enumerate(layout):
                    args = [a for role in roles for a in ("--role", role)]
                    procs.start(f"serve-{i}", [*PAYRELAY, "serve", *args, *ports])
                payments_url = f"http://127.0.0.1:{payments_port}"
                await wait_ready([f"{payments_url}/readyz"], procs)
                yield Deployment(backend, payments_url, orders_db, simulator, len(layout),
                                 procs, layout, env)
        finally:
            await orders_db.dispose()
