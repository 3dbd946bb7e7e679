"""The wake-up triggers both databases' migrations install (PostgreSQL only).

A row of work that becomes due -- inserted in its waiting status, moved into it, or made
due sooner (a requeue, a replay) -- runs `pg_notify(<channel>, '')` in the transaction that
wrote it. PostgreSQL delivers a notification only when that transaction commits, and folds
repeats of it within one transaction into one, so a batch of rows wakes a listener once and
a rolled-back write wakes nobody. Claims, lease heartbeats and postponements only move
`next_attempt_at` later, and notify nothing.

Migrations call these with literal names: a later change of shape gets new functions here,
so that what an old migration did stays what it does.
"""

from __future__ import annotations

from alembic import op

_FUNCTION = """
CREATE OR REPLACE FUNCTION payrelay_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], '');
    RETURN NULL;
END
$$
"""


def _on_postgres() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def create_wake_triggers(tables: dict[str, tuple[str, str]]) -> None:
    """For each table: notify `channel` when a row is due in status `waiting`."""
    if not _on_postgres():
        return  # SQLite: one process, whose workers wake each other in memory
    op.execute(_FUNCTION)
    for table, (channel, waiting) in tables.items():
        op.execute(
            f"CREATE TRIGGER {table}_wake_insert AFTER INSERT ON {table} FOR EACH ROW"
            f" WHEN (NEW.status = '{waiting}') EXECUTE FUNCTION payrelay_wake('{channel}')"
        )
        op.execute(
            f"CREATE TRIGGER {table}_wake_update AFTER UPDATE OF status, next_attempt_at"
            f" ON {table} FOR EACH ROW WHEN (NEW.status = '{waiting}' AND"
            " (OLD.status IS DISTINCT FROM NEW.status"
            "  OR NEW.next_attempt_at < OLD.next_attempt_at))"
            f" EXECUTE FUNCTION payrelay_wake('{channel}')"
        )


def drop_wake_triggers(tables: list[str]) -> None:
    if not _on_postgres():
        return
    for table in tables:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_wake_update ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_wake_insert ON {table}")
    op.execute("DROP FUNCTION IF EXISTS payrelay_wake()")
