"""What each fault does to the running topology, its servers and the gateway."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from sqlalchemy import Table, select, update
from sqlalchemy.engine import make_url

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.adapters.transports.rabbitmq import RabbitMQTransport
from payrelay.chaos.backing import CONSUMER_RETRY_DELAYS, Backing
from payrelay.chaos.facts import POISON_MARKER
from payrelay.chaos.options import NETWORK, FaultKind
from payrelay.chaos.outages import SERVER_OUTAGES, ServerOutages
from payrelay.chaos.schedule import PlannedFault
from payrelay.chaos.skew import faketime_library, skewed_env
from payrelay.chaos.topology import Topology
from payrelay.domain.work import OutboxStatus
from payrelay.messaging import ORDERS_EXCHANGE, PAYMENTS_EXCHANGE
from payrelay.ports import OutboundMessage

NOTIFY_FAULTS: dict[str, Any] = {
    "duplicate_rate": 0.2, "delay_max": 0.5, "reorder": True, "drop_rate": 0.05,
}
GATEWAY_FAULTS: dict[str, Any] = {
    "api_error_rate": 0.2, "api_slow_rate": 0.2, "api_slow_seconds": 1.0,
}
REPUBLISH_ROWS = 5  # per outbox, per fault


@dataclass
class SimulatorKnobs:
    """The gateway's fault switches, set over its HTTP API; windows may overlap."""

    simulator_url: str
    seed: int
    active: dict[FaultKind, int] = field(default_factory=dict)

    async def hold(self, kind: FaultKind, seconds: float) -> None:
        """Switch `kind`'s faults on for `seconds` (on until the last overlapping window ends)."""
        self.active[kind] = self.active.get(kind, 0) + 1
        await self._apply()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.active[kind] -= 1
            await self._apply()

    async def calm(self) -> None:
        """Every switch off, whatever windows are open (before settling and checking)."""
        self.active.clear()
        await self._apply()

    async def _apply(self) -> None:
        switches: dict[str, Any] = {"seed": self.seed}
        if self.active.get(FaultKind.NOTIFY):
            switches |= NOTIFY_FAULTS
        if self.active.get(FaultKind.GATEWAY):
            switches |= GATEWAY_FAULTS
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.put(f"{self.simulator_url}/simulator/faults",
                                    content=json.dumps(switches))
            answer.raise_for_status()


@dataclass
class Injectors:
    topology: Topology
    backing: Backing
    knobs: SimulatorKnobs
    rng: random.Random
    poison_sent: int = 0
    republished: int = 0
    outages: ServerOutages = field(default_factory=ServerOutages)
    skewed: set[str] = field(default_factory=set)
    """Workers on a skewed clock now: a second skew waits for the first to end."""

    async def inject(self, fault: PlannedFault) -> str:
        """Inject one fault; what it did, in a few words, for the fault log."""
        if fault.kind is FaultKind.KILL:
            return await self._kill(fault)
        if fault.kind is FaultKind.PG_TERMINATE:
            return await self._pg_terminate()
        if fault.kind in (FaultKind.NOTIFY, FaultKind.GATEWAY):
            await self.knobs.hold(fault.kind, fault.seconds)
            what = "webhook" if fault.kind is FaultKind.NOTIFY else "API 5xx/slow"
            return f"gateway's {what} faults on for {fault.seconds:.1f}s"
        if fault.kind is FaultKind.POISON:
            return await self._poison()
        if fault.kind in SERVER_OUTAGES:
            return await self.outages.inject(fault, self.backing)
        if fault.kind in NETWORK:
            return await self._network(fault)
        if fault.kind is FaultKind.CLOCK_SKEW:
            return await self._skew(fault)
        return await self._republish()

    async def _network(self, fault: PlannedFault) -> str:
        """The fault on every proxy of its link, for its window."""
        assert fault.target is not None and self.topology.network is not None
        proxies = self.topology.network.proxies(fault.target)
        window = f"for {fault.seconds:.1f}s"
        if fault.kind is FaultKind.NET_STALL:
            await asyncio.gather(*(p.stall(fault.seconds) for p in proxies))
            return f"{fault.target} silent (no byte either way) {window}"
        if fault.kind is FaultKind.NET_SLOW:
            await asyncio.gather(*(p.slow(fault.seconds, fault.amount) for p in proxies))
            return f"{fault.target} {fault.amount * 1000:.0f} ms per chunk each way {window}"
        cut = await asyncio.gather(*(p.cut(fault.seconds) for p in proxies))
        return f"{fault.target}: {sum(cut)} open connections reset, new ones refused {window}"

    async def _skew(self, fault: PlannedFault) -> str:
        """The worker started again on a clock `amount` seconds off, and back after."""
        assert fault.target is not None
        name = fault.target
        if name in self.skewed:
            return "skipped: its clock is skewed already"
        self.skewed.add(name)
        real = self.topology.workers[name].env
        try:
            await self.topology.respawn(name, skewed_env(real, fault.amount, faketime_library()))
            pid = self.topology.workers[name].pid
            await asyncio.sleep(fault.seconds)
        finally:
            await self.topology.respawn(name, real)
            self.skewed.discard(name)
        return f"pid {pid} ran on a clock {fault.amount:+.0f}s off for {fault.seconds:.1f}s"

    async def _kill(self, fault: PlannedFault) -> str:
        assert fault.target is not None
        if fault.target in self.topology.down:
            return "skipped: already down (an earlier kill's pause)"
        pid = self.topology.workers[fault.target].pid
        await self.topology.kill(fault.target)
        await asyncio.sleep(fault.seconds)
        await self.topology.restart(fault.target)
        return f"SIGKILL pid {pid}, started again after {fault.seconds:.1f}s"

    async def _pg_terminate(self) -> str:
        assert self.backing.postgres_admin_url is not None
        url = make_url(self.backing.postgres_admin_url)
        names = [make_url(u).database for u in (
            self.backing.payments_database_url, self.backing.orders_database_url)]
        conn = await asyncpg.connect(host=url.host, port=url.port or 5432, user=url.username,
                                     password=url.password, database=url.database)
        try:
            ended = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = ANY($1::text[]) AND pid <> pg_backend_pid()", names)
        finally:
            await conn.close()
        return f"terminated {ended} connections to payrelay's databases"

    async def _poison(self) -> str:
        """One undecodable message into each work exchange, as a buggy publisher would."""
        transport = RabbitMQTransport(
            self.backing.broker_url, name_prefix=self.backing.broker_prefix,
            connection_name=f"{self.backing.broker_prefix}chaos-poison",
            # The exchanges only: the queues are payrelay's, declared by its processes.
            subscriptions=(), retry_delays=CONSUMER_RETRY_DELAYS,
        )
        await transport.connect()
        try:
            batch = [
                OutboundMessage(uuid.uuid4(), exchange, key, "chaos-poison",
                                b'{"' + POISON_MARKER + b'": "not an envelope"}')
                for exchange, key in ((PAYMENTS_EXCHANGE, "payment.approved"),
                                      (ORDERS_EXCHANGE, "order.payment_applied"))
            ]
            confirmed = (await transport.publish(batch)).confirmed
        finally:
            await transport.close()
        self.poison_sent += len(confirmed)
        return f"{len(confirmed)} poison messages published"

    async def _republish(self) -> str:
        counts = []
        for url, table in ((self.backing.payments_database_url, t.payments_outbox),
                           (self.backing.orders_database_url, t.orders_outbox)):
            db = Database(url)
            try:
                counts.append(await _requeue_sent(db, table, REPUBLISH_ROWS, self.rng))
            finally:
                await db.dispose()
        self.republished += sum(counts)
        return f"{counts[0]} payment events and {counts[1]} outcomes set back to pending"


async def _requeue_sent(db: Database, table: Table, rows: int, rng: random.Random) -> int:
    """A few sent rows back to pending: the relay sends them again, same message ids."""
    async with db.transaction() as conn:
        sent = select(table.c.seq).where(table.c.status == OutboxStatus.SENT)
        seqs = sorted((await conn.execute(sent)).scalars())
        chosen = rng.sample(seqs, min(rows, len(seqs)))
        if chosen:
            await conn.execute(update(table).where(table.c.seq.in_(chosen)).values(
                status=OutboxStatus.PENDING, next_attempt_at=datetime.now(UTC)))
    return len(chosen)
