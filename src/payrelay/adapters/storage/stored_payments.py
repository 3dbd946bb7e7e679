"""The payments table: each payment as payrelay last applied it, and the order's answer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from payrelay.adapters.storage import tables as t
from payrelay.adapters.storage.batch_update import EXPECTED, update_batch
from payrelay.adapters.storage.database import Database, chunks, dialect_insert
from payrelay.domain.errors import ConcurrentUpdate
from payrelay.domain.events import Envelope
from payrelay.domain.money import AmountProblem, InexactAmount, Money
from payrelay.domain.payment import Payment, PaymentSnapshot, PaymentStatus


class SqlPayments:
    def __init__(self, conn: AsyncConnection, db: Database) -> None:
        self._conn, self._db = conn, db

    async def get(self, payment_id: str) -> Payment | None:
        found: Payment | None = (await self.get_many([payment_id])).get(payment_id)
        return found

    async def get_many(self, payment_ids: Sequence[str]) -> Mapping[str, Payment]:
        # FOR UPDATE serialises two processors that fetched the same payment (PostgreSQL;
        # SQLite has one writer and ignores it), in id order so they never deadlock.
        p = t.payments
        found: dict[str, Payment] = {}
        for chunk in chunks(sorted(set(payment_ids))):
            query = (select(p).where(p.c.payment_id.in_(chunk))
                     .order_by(p.c.payment_id).with_for_update())
            for row in await self._conn.execute(query):
                found[row.payment_id] = _payment_from_row(row)
        return found

    async def save(
        self, payment: Payment, *, expected_version: int | None, now: datetime
    ) -> None:
        if expected_version != (payment.version - 1 if payment.version > 1 else None):
            raise ValueError(f"payment {payment.payment_id}: a version grows by one per save")
        if await self.save_many([payment], now=now):
            raise ConcurrentUpdate(
                f"payment {payment.payment_id} is no longer at version {expected_version}"
            )

    async def save_many(self, payments: Sequence[Payment], *, now: datetime) -> set[str]:
        # In id order: the lock order. Versions grow by one per save, so the version read
        # is the one below the new one.
        rows = [_payment_values(p, now) for p in sorted(payments, key=lambda p: p.payment_id)]
        written = await self._insert_new([r for r in rows if r["version"] == 1])
        written |= await self._update_known([r for r in rows if r["version"] > 1])
        return {payment.payment_id for payment in payments} - written

    async def _insert_new(self, rows: list[dict[str, Any]]) -> set[str]:
        """A new payment expects no row. Two processors that both found none both get
        here: the second waits on the primary key until the first commits, then meets a
        row (versions start at 1, never 0) and writes nothing."""
        if not rows:
            return set()
        p = t.payments
        insert = dialect_insert(self._db, p)
        statement = insert.on_conflict_do_update(
            index_elements=[p.c.payment_id],
            set_={c: insert.excluded[c] for c in _PAYMENT_COLUMNS}, where=p.c.version == 0,
        ).returning(p.c.payment_id)
        # A list of parameters: compiled once, sent as one multi-row INSERT per batch.
        return set((await self._conn.execute(statement, rows)).scalars())

    async def _update_known(self, rows: list[dict[str, Any]]) -> set[str]:
        rows = [{**row, EXPECTED: row["version"] - 1} for row in rows]
        return await update_batch(self._conn, t.payments, rows, key="payment_id",
                                  values=lambda b: {c: getattr(b, c) for c in _PAYMENT_COLUMNS})

    async def record_outcome(self, envelope: Envelope, *, now: datetime) -> bool:
        """Store the order side's decision, unless a later decision is already stored."""
        result = await self._conn.execute(_RECORD_OUTCOME, _outcome_values(envelope, now))
        return bool(result.rowcount)

    async def record_outcomes(self, envelopes: Sequence[Envelope], *, now: datetime) -> None:
        if envelopes:
            await self._conn.execute(_RECORD_OUTCOME, [_outcome_values(e, now) for e in envelopes])


_RECORD_OUTCOME = (
    update(t.payments)
    .where(
        t.payments.c.payment_id == bindparam("b_key"),
        or_(t.payments.c.outcome_order_version.is_(None),
            t.payments.c.outcome_order_version <= bindparam("b_version")),
    )
    .values(order_outcome=bindparam("b_outcome"), outcome_reason=bindparam("b_reason"),
            outcome_at=bindparam("b_at"), outcome_order_version=bindparam("b_version"))
)


def _outcome_values(envelope: Envelope, now: datetime) -> dict[str, Any]:
    return {"b_key": envelope.payment_id, "b_version": envelope.order_version or 0,
            "b_outcome": envelope.type.value,
            "b_reason": envelope.reason.value if envelope.reason else None, "b_at": now}


_PAYMENT_COLUMNS = (
    "provider", "order_id", "status", "status_detail", "amount_minor", "refunded_minor",
    "currency", "amount_written", "amount_problem", "date_created", "date_approved",
    "date_last_updated", "version", "updated_at",
)


def _payment_values(payment: Payment, now: datetime) -> dict[str, Any]:
    s, inexact = payment.snapshot, payment.snapshot.inexact_amount
    return {
        "payment_id": s.payment_id,
        "provider": s.provider,
        "order_id": s.order_id,
        "status": s.status.value,
        "status_detail": s.status_detail,
        "amount_minor": s.amount.minor_units,
        "refunded_minor": s.amount_refunded.minor_units,
        "currency": s.amount.currency,
        "amount_written": inexact.written if inexact else None,
        "amount_problem": inexact.problem.value if inexact else None,
        "date_created": s.date_created,
        "date_approved": s.date_approved,
        "date_last_updated": s.date_last_updated,
        "version": payment.version,
        "updated_at": now,
    }


def _payment_from_row(row: Row[Any]) -> Payment:
    snapshot = PaymentSnapshot(
        payment_id=row.payment_id,
        provider=row.provider,
        order_id=row.order_id,
        status=PaymentStatus(row.status),
        status_detail=row.status_detail,
        amount=Money.from_minor(row.amount_minor, row.currency),
        amount_refunded=Money.from_minor(row.refunded_minor, row.currency),
        date_created=row.date_created,
        date_approved=row.date_approved,
        date_last_updated=row.date_last_updated,
        inexact_amount=(
            InexactAmount(row.amount_written, AmountProblem(row.amount_problem))
            if row.amount_problem else None
        ),
    )
    return Payment(snapshot, row.version)
