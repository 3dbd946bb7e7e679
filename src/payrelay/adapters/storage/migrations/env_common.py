"""What each script directory's env.py runs: migrations on a connection payrelay provides."""

from __future__ import annotations

from alembic import context


def run() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("payrelay migrations run through `payrelay migrate`, not bare alembic")
    context.configure(
        connection=connection,
        target_metadata=config.attributes["metadata"],
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs ALTER by copy
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
