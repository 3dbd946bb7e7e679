"""payrelay's payments side in NestJS mode, answered by the reference NestJS order service
(examples/nestjs-orders) over real RabbitMQ and PostgreSQL: customers pay (some twice,
with duplicated webhooks), the NestJS service is SIGKILLed mid-stream and started again,
and every order is still paid once, every payment answered, every surplus refunded once.

Needs node and npm (`npm ci` reaches the registry once; the build is cached by the hash of
the example's sources). Without them the test is skipped, except under CI=true: a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import aio_pika
import httpx
import pytest
from sqlalchemy import text, update

from payrelay.adapters.storage import queries
from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.adapters.transports.nestjs_packets import connect_rabbitmq
from payrelay.chaos.processes import free_port
from payrelay.domain.events import Envelope, EventType
from payrelay.domain.money import Money
from payrelay.entrypoints.http_server import EmbeddedServer
from payrelay.messaging import PAYMENTS_EXCHANGE
from payrelay.ports import OutboundMessage
from payrelay.simulator.app import create_app as create_simulator_app
from payrelay.simulator.faults import SimulatorFaults
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

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nestjs-orders"
SOURCES = ("package.json", "package-lock.json", "tsconfig.json", "src", "sql")
PAYRELAY = [sys.executable, "-m", "payrelay"]
TOKEN, SECRET, SERVICE_TOKEN = "TEST-token", "whsec-nestjs", "svc-nestjs-test"
NESTJS_QUEUE = "orders.nestjs-payment-events"
ORDERS, TWICE_EVERY, TOTAL = 24, 4, Decimal("12.30")


def require_node() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        message = "node and npm are needed to build and run examples/nestjs-orders"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI requires them", pytrace=False)
        pytest.skip(message)
    return node, npm


def built_example(npm: str) -> Path:
    """A built copy of the example, reused while its sources are unchanged."""
    digest = hashlib.sha256()
    for name in SOURCES:
        for path in sorted((EXAMPLE / name).rglob("*")) if (EXAMPLE / name).is_dir() \
                else [EXAMPLE / name]:
            if path.is_file():
                digest.update(str(path.relative_to(EXAMPLE)).encode() + path.read_bytes())
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "payrelay"
    target = cache / f"nestjs-orders-{digest.hexdigest()[:16]}"
    if (target / "dist" / "main.js").is_file():
        return target
    staging = cache / f"staging-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True)
        for name in SOURCES:
            source = EXAMPLE / name
            if source.is_dir():
                shutil.copytree(source, staging / name)
            else:
                shutil.copy2(source, staging / name)
        for args in ([npm, "ci", "--no-audit", "--no-fund"], [npm, "run", "build"]):
            done = subprocess.run(args, cwd=staging, capture_output=True, check=False)
            assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
        with contextlib.suppress(OSError):  # another run may have finished it first
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


class NestJSService:
    """The NestJS order service as a child process that the test can kill and restart."""

    def __init__(self, node: str, directory: Path, env: dict[str, str], log: Path) -> None:
        self._args, self._directory, self._env, self._log = (
            [node, "dist/main.js"], directory, env, log)
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        offset = self._log.stat().st_size if self._log.exists() else 0
        with self._log.open("ab") as out:
            self.process = subprocess.Popen(self._args, cwd=self._directory, env=self._env,
                                            stdout=out, stderr=subprocess.STDOUT)

        async def listening() -> bool:
            assert self.process is not None and self.process.poll() is None, \
                self._log.read_text()[-3000:]
            return "listening on" in self._log.read_text()[offset:]

        await eventually(listening, timeout=120, what="the NestJS service listening")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def payrelay_processes(env: dict[str, str], commands: list[list[str]], log_dir: Path
                       ) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        for i, args in enumerate(commands):
            with (log_dir / f"payrelay-{i}.log").open("wb") as log:
                started.append(subprocess.Popen([*PAYRELAY, "serve", *args], env=env,
                                                stdout=log, stderr=subprocess.STDOUT))
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.asynccontextmanager
async def broker_names(prefix: str) -> AsyncIterator[str]:
    """`prefix` for every exchange and queue of the run, the NestJS queue too; all deleted."""
    try:
        yield prefix
    finally:
        await delete_rabbitmq_topology(prefix)
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            await (await connection.channel()).queue_delete(f"{prefix}{NESTJS_QUEUE}")


def payrelay_env(payments_db: str, orders_db: str, prefix: str, gateway: str,
                 public: str, internal: str) -> dict[str, str]:
    return {
        **os.environ,
        "PAYRELAY_PAYMENTS_DATABASE_URL": payments_db,
        # The payments roles never open it; `serve` still wants a URL.
        "PAYRELAY_ORDERS_DATABASE_URL": orders_db,
        "PAYRELAY_BROKER_URL": RABBITMQ_URL,
        "PAYRELAY_BROKER_NAME_PREFIX": prefix,
        "PAYRELAY_ORDER_SIDE": "nestjs",
        "PAYRELAY_NESTJS_QUEUE": NESTJS_QUEUE,
        "PAYRELAY_GATEWAY_BASE_URL": gateway,
        "PAYRELAY_GATEWAY_ACCESS_TOKEN": TOKEN,
        "PAYRELAY_WEBHOOK_SECRETS": SECRET,
        "PAYRELAY_SERVICE_TOKEN": SERVICE_TOKEN,
        "PAYRELAY_PUBLIC_URL": public,
        "PAYRELAY_PAYMENTS_URL": internal,
        "PAYRELAY_RETRY_BASE_SECONDS": "0.1",
        "PAYRELAY_RETRY_CAP_SECONDS": "1",
        "PAYRELAY_POLL_INTERVAL_SECONDS": "0.05",
    }


async def test_payment_events_reach_the_nestjs_queue_as_persistent_packets():
    """Without node: what a NestJS `Transport.RMQ` server would read, and its declare."""
    require_server("RabbitMQ", RABBITMQ_URL)
    prefix = f"t-{uuid.uuid4().hex[:8]}."
    async with broker_names(prefix):
        transport = await connect_rabbitmq(
            RABBITMQ_URL, name_prefix=prefix,
            nestjs=(NESTJS_QUEUE, {"x-queue-type": "quorum"}))
        try:
            event = payment_event()
            message = OutboundMessage(event.message_id, PAYMENTS_EXCHANGE, event.routing_key,
                                      event.correlation_id, event.to_json())
            assert (await transport.publish([message])).confirmed == {event.message_id}
            connection = await aio_pika.connect(RABBITMQ_URL)
            async with connection:
                channel = await connection.channel()
                # As the NestJS server asserts it: durable, the same arguments. Fine.
                queue = await channel.declare_queue(
                    f"{prefix}{NESTJS_QUEUE}", durable=True,
                    arguments={"x-queue-type": "quorum"})
                delivered = await queue.get(timeout=5)
                await delivered.ack()
                # NestJS's default queueOptions ({}) against the quorum queue: the
                # collision the NestJS service's options must avoid.
                with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
                    await (await connection.channel()).declare_queue(
                        f"{prefix}{NESTJS_QUEUE}", durable=True)
        finally:
            await transport.close()
    assert json.loads(delivered.body) == {"pattern": "payment.approved",
                                          "data": event.to_dict()}
    assert delivered.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert (delivered.message_id, delivered.correlation_id) == (
        str(event.message_id), event.correlation_id)


def payment_event() -> Envelope:
    return Envelope(
        type=EventType.PAYMENT_APPROVED, occurred_at=datetime.now(UTC), order_id="o-1",
        payment_id="1000", provider="mercadopago", amount=Money.parse("12.30", "BRL"),
        payment_version=1, correlation_id="mercadopago:1000",
    )


@pytest.mark.node
async def test_a_nestjs_order_service_pays_each_order_once_through_a_sigkill(tmp_path: Path):
    node, npm = require_node()
    require_server("RabbitMQ", RABBITMQ_URL)
    directory = await asyncio.to_thread(built_example, npm)
    public_port, internal_port = free_port(), free_port()
    public, internal = f"http://127.0.0.1:{public_port}", f"http://127.0.0.1:{internal_port}"
    simulator = GatewaySimulator(
        access_token=TOKEN, webhook_secret=SECRET, approve_delay=0.05,
        delivery=DeliveryPolicy(base_delay=0.05, max_attempts=10),
        faults=SimulatorFaults(duplicate_rate=0.5),  # duplicated webhooks
    )
    async with fresh_postgres_databases(2) as (payments_db_url, nest_db_url), \
            broker_names(f"t-{uuid.uuid4().hex[:8]}.") as prefix, \
            simulator, EmbeddedServer(create_simulator_app(simulator)) as gateway:
        env = payrelay_env(payments_db_url, f"sqlite+aiosqlite:///{tmp_path}/unused-orders.db",
                           prefix, gateway.base_url, public, internal)
        migrated = await asyncio.to_thread(
            subprocess.run, [*PAYRELAY, "migrate"], env=env, capture_output=True, check=False)
        assert migrated.returncode == 0, migrated.stderr
        nest = NestJSService(node, directory, {
            **os.environ, "RABBITMQ_URL": RABBITMQ_URL, "PAYRELAY_BROKER_NAME_PREFIX": prefix,
            "PAYRELAY_NESTJS_QUEUE": NESTJS_QUEUE,
            "DATABASE_URL": nest_db_url.replace("+asyncpg", ""), "RELAY_INTERVAL_MS": "300",
        }, tmp_path / "nestjs.log")
        workers = [
            ["--role", "payments-api", "--payments-port", str(public_port),
             "--payments-internal-port", str(internal_port)],
            ["--role", "processor", "--role", "payments-relay", "--role", "outcome-consumer",
             "--role", "refunder"],
        ]
        nest_db, payments_db = Database(nest_db_url), Database(payments_db_url)
        try:
            with payrelay_processes(env, workers, tmp_path) as procs:
                await nest.start()
                await _pay_orders(simulator, internal, procs, nest_db, nest)
                await _check_settled(simulator, payments_db, nest_db)
                await _republish_and_check_repeats(payments_db, nest_db)
        finally:
            nest.stop()
            await nest_db.dispose()
            await payments_db.dispose()


async def _pay_orders(simulator: GatewaySimulator, internal: str,
                      procs: list[subprocess.Popen[bytes]], nest_db: Database,
                      nest: NestJSService) -> None:
    """Customers pay ORDERS orders, every TWICE_EVERY-th twice; the service dies mid-way."""
    async with httpx.AsyncClient(base_url=internal, timeout=10) as http:
        async def ready() -> bool:
            assert all(p.poll() is None for p in procs), "a payrelay process died"
            try:
                return (await http.get("/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(ready, timeout=120, what="the payments API ready")
        for i in range(ORDERS):
            if i == ORDERS // 2:
                await eventually(lambda: _applied_some(nest_db), timeout=60,
                                 what="the NestJS service applying events")
                nest.kill()  # SIGKILL with events in flight: unacked ones come back
            if i == ORDERS // 2 + 4:
                await nest.start()
            order_id = f"nest-{uuid.uuid4().hex[:12]}"
            async with nest_db.transaction() as conn:
                await conn.execute(text(
                    "INSERT INTO orders (order_id, total, currency) VALUES (:o, :t, 'BRL')"
                ), {"o": order_id, "t": TOTAL})
            checkout = await http.post(
                "/checkout", headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
                json={"order_id": order_id, "amount": str(TOTAL), "currency": "BRL"})
            assert checkout.status_code == 200, checkout.text
            preference = checkout.json()["preference_id"]
            await simulator.pay(preference, "approve")
            if i % TWICE_EVERY == 0:
                await simulator.pay(preference, "approve")  # a customer paying twice
            await asyncio.sleep(0.05)


async def _applied_some(nest_db: Database) -> bool:
    async with nest_db.read() as conn:
        return bool((await conn.execute(text("SELECT count(*) FROM inbox"))).scalar_one())


async def _check_settled(simulator: GatewaySimulator, payments_db: Database,
                         nest_db: Database) -> None:
    payments = ORDERS + len(range(0, ORDERS, TWICE_EVERY))

    async def settled() -> bool:
        rows = await queries.payment_rows(payments_db)
        answered = len(rows) == payments and all(r.order_outcome for r in rows)
        # ...and the refunds seen by the processor, so that no more events are coming.
        answered = answered and all(
            r.status == ("approved" if r.order_outcome == "order.payment_applied" else "refunded")
            for r in rows)
        ledger = simulator.ledger()
        refunded = all(e.refunded == TOTAL * (len(e.payment_ids) - 1) for e in ledger.values())
        return answered and refunded and len(ledger) == ORDERS

    await eventually(settled, timeout=180, what="every payment answered and refunded")

    async def every_event_in_the_inbox() -> bool:  # later events (stale ones) included
        async with payments_db.read() as conn:
            events = (await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one()
        async with nest_db.read() as conn:
            inbox = (await conn.execute(text("SELECT count(*) FROM inbox"))).scalar_one()
        assert inbox <= events, "the NestJS inbox holds a message payrelay never sent"
        return bool(inbox == events)

    await eventually(every_event_in_the_inbox, timeout=60, what="every event applied once")
    async with nest_db.read() as conn:
        orders = (await conn.execute(text(
            "SELECT order_id, status, paid_by, version FROM orders"))).all()
        records = (await conn.execute(text(
            "SELECT payment_id, order_id, outcome, reason FROM order_payments"))).all()
    assert len(orders) == ORDERS and {o.status for o in orders} == {"paid"}
    assert {o.version for o in orders} <= {2, 3}  # paid once; 3: an earlier approval kept
    applied = {r.payment_id for r in records if r.outcome == "order.payment_applied"}
    assert applied == {o.paid_by for o in orders}
    rows = await queries.payment_rows(payments_db)
    recorded = {r.payment_id: (r.order_outcome, r.outcome_reason) for r in rows}
    assert recorded == {r.payment_id: (r.outcome, r.reason) for r in records}
    assert {r.outcome_reason for r in rows if r.outcome_reason} == {"already_paid"}
    for row in rows:  # the surplus payment of each double payment refunded exactly once
        expected = 0 if row.payment_id in applied else 1
        assert len(simulator.refunds(row.payment_id)) == expected, row


async def _republish_and_check_repeats(payments_db: Database, nest_db: Database) -> None:
    """Every payment event published again: the NestJS service answers each repeat with
    the outcome it recorded, and nothing moves on either side."""
    async with payments_db.read() as conn:
        inbox_before = (await conn.execute(text("SELECT count(*) FROM inbox"))).scalar_one()
    async with nest_db.read() as conn:
        before = (await conn.execute(text(
            "SELECT now() AS at, (SELECT count(*) FROM inbox) AS inbox, "
            "(SELECT count(*) FROM outbox) AS outbox, (SELECT sum(version) FROM orders) AS v"
        ))).one()
    async with payments_db.transaction() as conn:
        await conn.execute(update(t.payments_outbox).values(status="pending"))

    async def answered_again() -> bool:
        async with nest_db.read() as conn:
            waiting = (await conn.execute(text(
                "SELECT count(*) FROM inbox i LEFT JOIN outbox o ON o.message_id = i.reply_id "
                "WHERE i.reply_id IS NOT NULL AND (o.sent_at IS NULL OR o.sent_at <= :at)"
            ), {"at": before.at})).scalar_one()
        return waiting == 0 and await queries.outbox_pending(payments_db, orders_side=False) == 0

    await eventually(answered_again, timeout=120, what="every repeat answered again")
    async with nest_db.read() as conn:
        after = (await conn.execute(text(
            "SELECT (SELECT count(*) FROM inbox) AS inbox, "
            "(SELECT count(*) FROM outbox) AS outbox, (SELECT sum(version) FROM orders) AS v"
        ))).one()
    assert (after.inbox, after.outbox, after.v) == (before.inbox, before.outbox, before.v)
    await asyncio.sleep(1.0)  # the repeated answers reach the outcome consumer
    async with payments_db.read() as conn:
        inbox_after = (await conn.execute(text("SELECT count(*) FROM inbox"))).scalar_one()
    assert inbox_after == inbox_before  # the payments side knew every repeated answer
