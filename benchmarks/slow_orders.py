"""A slow order side, modelled in the orders database, without touching payrelay's code.

The model: **every UPDATE statement on `orders` costs the order database `seconds`** (200 ms
in the bench), as if the order service's database were remote, or replicated synchronously
to a far standby. It is a statement-level trigger, `AFTER UPDATE ... FOR EACH STATEMENT`,
whose function sleeps inside the statement, so the time is spent holding the statement's
locks and the transaction open, as a slow commit round trip would.

A statement costs the same whether it updates one row, two hundred or none (a statement
matching no row still fires a statement-level trigger). That is the point of the model: it
rewards a consumer that applies a batch with one `UPDATE ... FROM (VALUES ...)` and punishes
one `UPDATE` per message. A per-row cost (`FOR EACH ROW`, or a slow disk) would be a
different model, where batching the statements would not help and only parallel
transactions would.

Only UPDATE is slowed: orders are created with INSERT (the bench seeds them that way), and
reads stay fast. Both the recovery scenarios and the naive-pattern comparison install it,
so the two sides meet the same slow order database.
"""

from __future__ import annotations

from sqlalchemy import text

from payrelay.adapters.storage.database import Database

__all__ = ["slow_order_updates"]

FUNCTION = "payrelay_bench_slow_order_update"


def _statements(seconds: float) -> list[str]:
    # `seconds` is formatted as a float literal: pg_sleep takes no bind parameter inside a
    # function body, and a float cannot carry SQL.
    return [
        f"""CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_sleep({float(seconds)!r});
                RETURN NULL;
            END $$""",
        f"DROP TRIGGER IF EXISTS {FUNCTION} ON orders",
        f"""CREATE TRIGGER {FUNCTION} AFTER UPDATE ON orders
            FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()""",
    ]


async def slow_order_updates(orders_db_url: str, seconds: float) -> None:
    """Make every UPDATE statement on `orders` in that PostgreSQL database take `seconds`.

    For a scratch database only (it stays until the database is dropped):

        await slow_order_updates(env["PAYRELAY_ORDERS_DATABASE_URL"], 0.2)
    """
    if not orders_db_url.startswith("postgresql"):
        raise ValueError("the slow order side is modelled in PostgreSQL only")
    db = Database(orders_db_url)
    try:
        async with db.transaction() as conn:
            for statement in _statements(seconds):
                await conn.execute(text(statement))
    finally:
        await db.dispose()
