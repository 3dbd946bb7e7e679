"""What every party recorded, read once: the gateway through its HTTP API (as any client
would read it), both databases through the storage adapters."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import func, select

from payrelay.adapters.storage import queries
from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.database import Database
from payrelay.chaos.topology import Endpoints
from payrelay.domain.work import NotificationStatus, RefundStatus
from payrelay.ports import OrderRow, PaymentRow, PaymentsBacklog

POISON_MARKER = b"payrelay-chaos-poison"
"""In the body of every poison message, so the checker tells them from real dead letters."""


@dataclass(frozen=True, slots=True)
class GatewayPayment:
    payment_id: str
    order_id: str | None
    status: str
    date_approved: datetime | None
    refunds: int


@dataclass(frozen=True, slots=True)
class LedgerMoney:
    """One order's money at the gateway: captured, given back, taken back by the issuer."""

    charged: Decimal
    refunded: Decimal
    charged_back: Decimal

    @property
    def net(self) -> Decimal:
        return self.charged - self.refunded - self.charged_back


@dataclass(frozen=True, slots=True)
class Step:
    """One timeline row: `step` happened to `payment_id` of `order_id`."""

    order_id: str | None
    payment_id: str | None
    step: str


@dataclass(frozen=True, slots=True)
class Facts:
    gateway: dict[str, GatewayPayment]
    ledger: dict[str, LedgerMoney]
    gateway_stats: dict[str, int]
    payments: dict[str, PaymentRow]
    orders: dict[str, OrderRow]
    refunds: dict[str, RefundStatus]
    payments_timeline: list[Step]
    orders_timeline: list[Step]
    dead_letters: list[bytes]
    """The bodies of dead messages, both sides."""
    dead_work: int
    """Notifications and refunds given up as dead."""
    reconciler_found: frozenset[str]
    """Payments payrelay first heard of from the reconciler, not from a webhook."""
    backlog: PaymentsBacklog
    orders_outbox_pending: int
    retries: int
    reconciler_fixes: int


async def read_facts(endpoints: Endpoints, payments_db: Database, orders_db: Database) -> Facts:
    async with httpx.AsyncClient(timeout=30) as http:
        gateway = await _gateway_payments(http, endpoints)
        ledger = await _get(http, f"{endpoints.simulator_url}/simulator/ledger")
        stats = await _get(http, f"{endpoints.simulator_url}/simulator/stats")
    return Facts(
        gateway=gateway,
        ledger={order_id: _money(entry) for order_id, entry in ledger.items()},
        gateway_stats={k: int(v) for k, v in stats.items()},
        payments={p.payment_id: p for p in await queries.payment_rows(payments_db)},
        orders={o.order_id: o for o in await queries.order_rows(orders_db)},
        refunds=await _refunds(payments_db),
        payments_timeline=await _timeline(payments_db, t.payments_timeline),
        orders_timeline=await _timeline(orders_db, t.orders_timeline),
        dead_letters=[*await _dead_bodies(payments_db, t.payments_dead_letters),
                      *await _dead_bodies(orders_db, t.orders_dead_letters)],
        dead_work=await _dead_work(payments_db),
        reconciler_found=await _reconciler_found(payments_db),
        backlog=await queries.payments_backlog(payments_db),
        orders_outbox_pending=await queries.outbox_pending(orders_db, orders_side=True),
        retries=await queries.retries(payments_db, orders_side=False)
        + await queries.retries(orders_db, orders_side=True),
        reconciler_fixes=await queries.reconciler_fixes(payments_db),
    )


async def _get(http: httpx.AsyncClient, url: str, **params: Any) -> Any:
    """The JSON answer; a 5xx (an API fault still armed) is asked again, briefly."""
    for attempt in range(20):
        response = await http.get(url, params=params)
        if response.status_code < 500:
            response.raise_for_status()
            return json.loads(response.content, parse_float=Decimal)
        await asyncio.sleep(0.1 * (attempt + 1))
    response.raise_for_status()
    raise AssertionError("unreachable")


async def _gateway_payments(
    http: httpx.AsyncClient, endpoints: Endpoints
) -> dict[str, GatewayPayment]:
    """Every payment the gateway holds, from its own search, page by page."""
    http.headers["authorization"] = f"Bearer {endpoints.access_token}"
    found: dict[str, GatewayPayment] = {}
    offset, total = 0, 1
    while offset < total:
        page = await _get(
            http, f"{endpoints.simulator_url}/v1/payments/search", range="date_created",
            begin_date="NOW-1DAYS", end_date="NOW", sort="id", criteria="asc", limit=1000,
            offset=offset,
        )
        total = int(page["paging"]["total"])
        for p in page["results"]:
            approved = p["date_approved"]
            found[str(p["id"])] = GatewayPayment(
                payment_id=str(p["id"]), order_id=p["external_reference"], status=p["status"],
                date_approved=datetime.fromisoformat(approved) if approved else None,
                refunds=len(p["refunds"]),
            )
        offset += len(page["results"]) or total
    return found


def _money(entry: dict[str, Any]) -> LedgerMoney:
    return LedgerMoney(Decimal(entry["charged"]), Decimal(entry["refunded"]),
                 Decimal(entry["charged_back"]))


async def _refunds(db: Database) -> dict[str, RefundStatus]:
    query = select(t.refunds.c.payment_id, t.refunds.c.status)
    async with db.read() as conn:
        return {pid: RefundStatus(status) for pid, status in (await conn.execute(query)).all()}


async def _timeline(db: Database, table: Any) -> list[Step]:
    query = select(table.c.order_id, table.c.payment_id, table.c.step).order_by(table.c.seq)
    async with db.read() as conn:
        return [Step(*row) for row in (await conn.execute(query)).all()]


async def _dead_bodies(db: Database, table: Any) -> list[bytes]:
    async with db.read() as conn:
        return [bytes(body) for body in (await conn.execute(select(table.c.body))).scalars()]


async def _dead_work(db: Database) -> int:
    dead = 0
    async with db.read() as conn:
        for table, status in ((t.notifications, NotificationStatus.DEAD),
                              (t.refunds, RefundStatus.DEAD)):
            query = select(func.count()).where(table.c.status == status)
            dead += int((await conn.execute(query)).scalar_one())
    return dead


async def _reconciler_found(db: Database) -> frozenset[str]:
    n = t.notifications
    query = select(n.c.resource_id, n.c.action).order_by(n.c.id)
    first: dict[str, str | None] = {}
    async with db.read() as conn:
        for payment_id, action in (await conn.execute(query)).all():
            if payment_id:
                first.setdefault(str(payment_id), action)
    return frozenset(pid for pid, action in first.items() if action == "reconciler")
