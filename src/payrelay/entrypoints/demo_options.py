"""The choices `payrelay demo` offers, apart from the demo itself: `payrelay --help` lists
them without importing the stack the demo runs (entrypoints/cli.py imports nothing heavy)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DEFAULT_POSTGRES_URL", "DEFAULT_RABBITMQ_URL", "Backend", "FaultProfile"]

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"


class Backend(StrEnum):
    EMBEDDED = "embedded"
    """Two SQLite files and the in-process transport: no servers."""
    POSTGRES_RABBITMQ = "postgres+rabbitmq"
    """Scratch PostgreSQL databases and uniquely named RabbitMQ queues, removed afterwards."""


class FaultProfile(StrEnum):
    NONE = "none"
    """A calm day: every notification arrives once, in order."""
    DEFAULT = "default"
    """Duplicate, delayed and reordered notifications, a few gateway 5xx answers."""
    HEAVY = "heavy"
    """All of the above, plus dropped notifications, order-database outages, consumer
    crashes between commit and ack, lost refund answers, and customers paying after
    cancellation or expiry."""
