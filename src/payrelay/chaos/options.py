"""What a chaos run does: its size, its seed, its faults, where it runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"


class FaultKind(StrEnum):
    """The kinds of fault a run may inject; each is switched on or off as a whole."""

    KILL = "kill"
    """`kill -9` of a random payrelay process, restarted by the harness after a random pause."""
    PG_TERMINATE = "pg_terminate"
    """`pg_terminate_backend` of every connection to payrelay's two databases (PostgreSQL)."""
    NOTIFY = "notify"
    """The gateway's webhooks duplicated, delayed, reordered and dropped, all run long."""
    GATEWAY = "gateway"
    """Windows of a few seconds in which the gateway's API answers 5xx or slowly."""
    POISON = "poison"
    """Malformed messages published straight to both work exchanges (RabbitMQ only)."""
    REPUBLISH = "republish"
    """Sent outbox rows set back to pending, as a relay killed between the broker's confirm
    and its mark-sent leaves them: every message goes out again under its own id."""
    NET_STALL = "net_stall"
    """A link (to PostgreSQL or RabbitMQ) goes silent for 2-20 s: connections stay open, no
    byte passes either way; longer than payrelay's timeouts, on purpose."""
    NET_SLOW = "net_slow"
    """A link holds every chunk 50-500 ms each way for a few seconds."""
    NET_CUT = "net_cut"
    """Every open connection of a link reset (an RST), new ones refused for 0-5 s."""
    CLOCK_SKEW = "clock_skew"
    """A payrelay process started again under `faketime`, its clock 5 s to 3 min ahead or
    behind, for 10-30 s, then started again on the real clock (needs Debian's faketime)."""


NETWORK = frozenset({FaultKind.NET_STALL, FaultKind.NET_SLOW, FaultKind.NET_CUT})
"""Kinds that hit a link to PostgreSQL or RabbitMQ through its proxy."""
SERVER_ONLY = frozenset({FaultKind.PG_TERMINATE, FaultKind.POISON}) | NETWORK
"""Kinds that need PostgreSQL or RabbitMQ: an embedded run skips them."""
DEFAULT_FAULTS = frozenset(FaultKind) - {FaultKind.CLOCK_SKEW}
"""What a run injects unless told otherwise: every kind that needs nothing but payrelay.
`clock_skew` needs Debian's faketime, a system package; a run asked for it without it
fails, saying how to install it."""


@dataclass(frozen=True, slots=True)
class ChaosOptions:
    payments: int = 200
    """Payments the customers make, roughly (a plan decides each customer's payments)."""
    rate: float = 10.0
    """Payments started per second."""
    duration: float | None = None
    """Stop starting customers after this many seconds, even short of `payments`."""
    seed: int = 1
    faults: frozenset[FaultKind] = DEFAULT_FAULTS
    embedded: bool = False
    """One `payrelay serve` process (every role) on SQLite and the local transport."""
    postgres_url: str = DEFAULT_POSTGRES_URL
    rabbitmq_url: str = DEFAULT_RABBITMQ_URL
    sla: float = 45.0
    """An approved payment whose order is still pending after this many seconds is stuck."""
    settle_timeout: float = 90.0
    """How long, after the last customer, the harness waits for everything to settle."""
    second_payment_after: tuple[float, float] = (20.0, 40.0)
    """How long a customer who pays twice "later" waits between the two payments."""
    work_dir: Path | None = None
    """Where process logs go (default: a temporary directory, kept if the run fails)."""
    extra_env: dict[str, str] = field(default_factory=dict)
    """More PAYRELAY_* settings for every payrelay process (a test's broken build)."""

    def active_faults(self) -> frozenset[FaultKind]:
        """The kinds that apply to this backend."""
        return self.faults - SERVER_ONLY if self.embedded else self.faults
