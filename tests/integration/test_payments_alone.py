"""The payments side on its own, as a shop with its own order service runs it: PostgreSQL and
RabbitMQ, no orders database configured, `payrelay serve` with payments-side roles only.

The shop's order service is played by this test, straight on aio-pika and only from the
published contract (docs/contract/): it declares its own queue, takes the payment event,
checks it against the JSON Schema and answers. payrelay's reference order queue must never
exist, and the payment event must wait (unconfirmed, retried) until a queue takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from aio_pika.exceptions import ChannelNotFoundEntity
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from payrelay.adapters.storage import queries
from payrelay.adapters.storage.database import Database
from payrelay.adapters.transports.rabbitmq_topology import Topology
from payrelay.bootstrap import Role, Side, adapter_resources, bootstrap, migrate
from payrelay.chaos.processes import free_port
from payrelay.config import Settings
from payrelay.domain.events import Envelope, EventType
from payrelay.entrypoints.cli import app
from payrelay.entrypoints.http_server import EmbeddedServer
from payrelay.messaging import (
    ORDER_SIDE_SUBSCRIPTION,
    ORDERS_EXCHANGE,
    PAYMENTS_EXCHANGE,
    PAYMENTS_SIDE_SUBSCRIPTION,
)
from payrelay.simulator.app import create_app as create_simulator_app
from payrelay.simulator.notifier import DeliveryPolicy
from payrelay.simulator.state import GatewaySimulator
from tests.support import (
    RABBITMQ_URL,
    delete_rabbitmq_topology,
    eventually,
    fresh_postgres_databases,
    require_server,
)

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

TOKEN, SECRET, SERVICE = "TEST-token", "whsec-alone", "service-token-alone"
PAYRELAY = [sys.executable, "-m", "payrelay"]
PAYMENTS_ROLES = ["payments-api", "processor", "payments-relay", "outcome-consumer",
                  "refunder", "reconciler"]
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "contract" / "schemas"
                     / "payment-event.schema.json").read_text())


def run_payrelay(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PAYRELAY, *args], env=env, capture_output=True, text=True,
                          check=False, timeout=60)


@contextlib.asynccontextmanager
async def serving(env: dict[str, str], args: list[str], log: Path
                  ) -> AsyncIterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen([*PAYRELAY, "serve", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def queue_exists(connection: AbstractRobustConnection, name: str) -> bool:
    """A passive declare: no queue is created, and a missing one closes only its channel."""
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        return False
    with contextlib.suppress(Exception):
        await channel.close()
    return True


def environment(payments_db: str, prefix: str, sim_url: str, ports: dict[str, int]
                ) -> dict[str, str]:
    return {
        **os.environ,
        "PAYRELAY_PAYMENTS_DATABASE_URL": payments_db,
        "PAYRELAY_ORDERS_DATABASE_URL": "",  # the shop's order service has its own
        "PAYRELAY_BROKER_URL": RABBITMQ_URL, "PAYRELAY_BROKER_NAME_PREFIX": prefix,
        "PAYRELAY_GATEWAY_BASE_URL": sim_url, "PAYRELAY_GATEWAY_ACCESS_TOKEN": TOKEN,
        "PAYRELAY_WEBHOOK_SECRETS": SECRET, "PAYRELAY_SERVICE_TOKEN": SERVICE,
        "PAYRELAY_PUBLIC_URL": f"http://127.0.0.1:{ports['public']}",
        "PAYRELAY_RETRY_BASE_SECONDS": "0.1", "PAYRELAY_RETRY_CAP_SECONDS": "1",
        "PAYRELAY_POLL_INTERVAL_SECONDS": "0.05",
    }


def test_migrate_takes_a_side_and_needs_no_orders_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`payrelay migrate --side` on SQLite with the orders URL empty (in process: cheap)."""
    monkeypatch.chdir(tmp_path)  # the default orders URL would be var/orders.db, here
    env = {"PAYRELAY_PAYMENTS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
           "PAYRELAY_ORDERS_DATABASE_URL": ""}
    runner = CliRunner()
    done = runner.invoke(app, ["migrate", "--side", "payments"], env=env)
    assert done.exit_code == 0, done.output
    assert "payments database is at the current schema" in done.output
    both = runner.invoke(app, ["migrate"], env=env)  # the default, both: orders skipped
    assert both.exit_code == 0 and "skipped" in both.output, both.output
    orders = runner.invoke(app, ["migrate", "--side", "orders"], env=env)
    assert orders.exit_code == 2 and "PAYRELAY_ORDERS_DATABASE_URL" in orders.output
    assert runner.invoke(app, ["migrate", "--side", "invoices"], env=env).exit_code == 2
    assert (tmp_path / "p.db").exists()
    assert not (tmp_path / "var").exists()  # no orders database was opened, nor its dir


async def test_a_payments_only_deployment_pays_through_a_foreign_order_service(
    tmp_path: Path,
) -> None:
    require_server("RabbitMQ", RABBITMQ_URL)
    ports = {"public": free_port(), "internal": free_port()}
    prefix = f"t-{uuid.uuid4().hex[:8]}."
    simulator = GatewaySimulator(access_token=TOKEN, webhook_secret=SECRET, approve_delay=0.05,
                                 delivery=DeliveryPolicy(base_delay=0.05, max_attempts=10))
    async with fresh_postgres_databases(1) as (payments_db_url,), simulator, \
            EmbeddedServer(create_simulator_app(simulator)) as sim_server:
        env = environment(payments_db_url, prefix, sim_server.base_url, ports)
        migrated = await asyncio.to_thread(run_payrelay, env, "migrate", "--side", "payments")
        assert migrated.returncode == 0, migrated.stderr
        args = [a for role in PAYMENTS_ROLES for a in ("--role", role)] + [
            "--payments-port", str(ports["public"]),
            "--payments-internal-port", str(ports["internal"])]
        connection = await aio_pika.connect_robust(RABBITMQ_URL)
        try:
            async with serving(env, args, tmp_path / "payments.log") as proc:
                await pay_and_answer(proc, connection, simulator, prefix, payments_db_url,
                                     ports["internal"])
            assert proc.returncode == 0, (tmp_path / "payments.log").read_text()
        finally:
            with contextlib.suppress(Exception):
                channel = await connection.channel()
                await channel.queue_delete(f"{prefix}shop.payment-events")
            await connection.close()
            await delete_rabbitmq_topology(prefix)


async def pay_and_answer(
    proc: subprocess.Popen[bytes], connection: AbstractRobustConnection,
    simulator: GatewaySimulator, prefix: str, payments_db_url: str, internal_port: int,
) -> None:
    internal = f"http://127.0.0.1:{internal_port}"
    async with httpx.AsyncClient(timeout=10) as http:
        async def ready() -> bool:
            assert proc.poll() is None, "payrelay serve exited at start-up"
            try:
                return (await http.get(f"{internal}/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(ready, timeout=30, what="the payments API ready")
        checkout = await http.post(
            f"{internal}/checkout", headers={"Authorization": f"Bearer {SERVICE}"},
            json={"order_id": "shop-1", "amount": "19.90", "currency": "BRL"})
        assert checkout.status_code == 200, checkout.text
    own_queue = prefix + PAYMENTS_SIDE_SUBSCRIPTION.queue
    assert await queue_exists(connection, own_queue)  # the outcome consumer's own
    payment_id = await simulator.pay(checkout.json()["preference_id"], "approve")

    payments_db = Database(payments_db_url)
    try:
        async def held_back() -> bool:  # published, returned unroutable, kept pending
            return await queries.outbox_pending(payments_db, orders_side=False) == 1

        await eventually(held_back, timeout=20, what="the approval in the outbox")
        await asyncio.sleep(1.0)  # several publishes, each returned: still pending
        assert await queries.outbox_pending(payments_db, orders_side=False) == 1
        event = await shop_takes_the_event(connection, prefix)
        assert event.type is EventType.PAYMENT_APPROVED
        assert event.payment_id == str(payment_id) and event.order_id == "shop-1"
        await shop_answers(connection, prefix, event)

        async def answered() -> bool:
            rows = await queries.payment_rows(payments_db)
            return [r.order_outcome for r in rows] == ["order.payment_applied"]

        await eventually(answered, timeout=20, what="the shop's answer recorded")
        assert await queries.outbox_pending(payments_db, orders_side=False) == 0
    finally:
        await payments_db.dispose()
    # Neither the reference order side's work queue nor its retry and dead-letter queues.
    topology = Topology(prefix, 20, (1, 5, 30, 120, 600))
    for name in topology.queues(ORDER_SIDE_SUBSCRIPTION):
        assert not await queue_exists(connection, name), name


async def shop_takes_the_event(connection: AbstractRobustConnection, prefix: str) -> Envelope:
    """The shop's order service: its own queue on payrelay's exchange, as the contract says."""
    channel = await connection.channel()
    queue = await channel.declare_queue(f"{prefix}shop.payment-events", durable=True)
    await queue.bind(prefix + PAYMENTS_EXCHANGE, "payment.*")
    got: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    await queue.consume(got.put)
    async with asyncio.timeout(20):  # the relay's retry delivers it once the queue is bound
        message = await got.get()
    body = json.loads(message.body)
    assert list(Draft202012Validator(SCHEMA).iter_errors(body)) == []
    assert (message.message_id, message.content_type) == (body["message_id"], "application/json")
    assert message.headers.get("x-payrelay-attempt", 0) >= 1  # returned at least once before
    await message.ack()
    return Envelope.from_dict(body)


async def shop_answers(connection: AbstractRobustConnection, prefix: str, event: Envelope
                       ) -> None:
    answer = replace(event, type=EventType.ORDER_PAYMENT_APPLIED, message_id=uuid.uuid4(),
                     causation_id=event.message_id, occurred_at=datetime.now(UTC),
                     order_version=2)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(prefix + ORDERS_EXCHANGE, ensure=True)
    await exchange.publish(
        aio_pika.Message(answer.to_json(), message_id=str(answer.message_id),
                         correlation_id=answer.correlation_id, type=answer.routing_key,
                         content_type="application/json",
                         delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        answer.routing_key, mandatory=True)


async def test_bootstrap_opens_no_orders_database_for_payments_roles(tmp_path: Path) -> None:
    settings = Settings(payments_database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
                        orders_database_url=f"sqlite+aiosqlite:///{tmp_path / 'o' / 'o.db'}")
    await migrate(settings, sides=[Side.PAYMENTS])
    system = await bootstrap(settings, roles=[Role.PROCESSOR, Role.REFUNDER],
                             check_schema=[Role.PROCESSOR, Role.REFUNDER])
    try:
        assert system.orders_side is None and adapter_resources(system).orders_db is None
        with pytest.raises(ValueError, match="no orders database"):
            _ = system.orders
        assert await system.dead_letters.recent() == []  # the payments database's alone
    finally:
        await system.close()
    assert not (tmp_path / "o").exists()  # not even its directory
    without = settings.model_copy(update={"orders_database_url": None})
    with pytest.raises(ValueError, match="PAYRELAY_ORDERS_DATABASE_URL is empty"):
        await bootstrap(without, roles=[Role.ORDER_CONSUMER])
    assert Settings(orders_database_url="").orders_database_url is None
