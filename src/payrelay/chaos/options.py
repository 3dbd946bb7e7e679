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
    BROKER_STOP = "broker_stop"
    """The private broker's app stopped for a few seconds (`rabbitmqctl stop_app`), then
    started again: every connection drops and no new one is accepted meanwhile."""
    BROKER_CLOSE = "broker_close"
    """Every connection to the private broker closed from the server side
    (`rabbitmqctl close_all_connections`): publishers and consumers must reconnect."""
    ORDERS_DB_DOWN = "orders_db_down"
    """The order database refuses connections for a few seconds (`ALLOW_CONNECTIONS
    false`, its backends terminated): the payments side goes on, the order side waits."""
    DB_DOWN = "db_down"
    """The private PostgreSQL cluster crashes (`pg_ctl stop -m immediate`) and is started
    again a few seconds later: both databases gone at once, then crash recovery."""
    NET_STALL = "net_stall"
    """A link (to PostgreSQL or RabbitMQ) goes silent for 2-20 s: connections stay open, no
    byte passes either way; longer than payrelay's timeouts, on purpose."""
    NET_SLOW = "net_slow"
    """A link holds every chunk 50-500 ms each way for a few seconds."""
    NET_CUT = "net_cut"
    """Every open connection of a link reset (an RST), new ones refused for 0-5 s."""
    CLOCK_SKEW = "clock_skew"
    """A payrelay process started again under `faketime`, its clock 5 s to 3 min ahead or
    behind, for 10-30 s, then started again on the real clock (needs Debian's faketime).
    payrelay tells time by the PostgreSQL server (`ServerClock`), so nothing may notice."""


NETWORK = frozenset({FaultKind.NET_STALL, FaultKind.NET_SLOW, FaultKind.NET_CUT})
"""Kinds that hit a link to PostgreSQL or RabbitMQ through its proxy."""
SERVER_ONLY = frozenset({FaultKind.PG_TERMINATE, FaultKind.POISON, FaultKind.CLOCK_SKEW}) | NETWORK
"""Kinds that need PostgreSQL or RabbitMQ: an embedded run skips them. `clock_skew` among
them: processes tell time by the database server, and SQLite has none; an embedded
deployment is one machine with one clock."""
NEEDS_PRIVATE_POSTGRES = frozenset({FaultKind.ORDERS_DB_DOWN, FaultKind.DB_DOWN})
"""Kinds that take PostgreSQL (or a database) down: only ever a cluster the run started."""
NEEDS_PRIVATE_RABBITMQ = frozenset({FaultKind.BROKER_STOP, FaultKind.BROKER_CLOSE})
"""Kinds that stop the broker or cut every connection: only ever the run's own node."""
DEFAULT_FAULTS = frozenset(FaultKind)
"""What a run injects unless told otherwise: every kind. `clock_skew` needs Debian's
faketime, a system package (`make test` installs it); a run without it fails at once,
saying how to install it or to name the other kinds in `--faults`."""


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
    private_postgres: bool = True
    """A PostgreSQL cluster of the run's own (`initdb` on a free port), not `postgres_url`."""
    private_rabbitmq: bool = True
    """A RabbitMQ node of the run's own (its own node name and ports), not `rabbitmq_url`."""

    def faults_off(self) -> frozenset[FaultKind]:
        """Asked-for kinds left off because they would stop or cut a server the run did
        not start itself (one given with `postgres_url` / `rabbitmq_url`)."""
        off = frozenset[FaultKind]()
        if not self.embedded and not self.private_postgres:
            off |= NEEDS_PRIVATE_POSTGRES
        if not self.embedded and not self.private_rabbitmq:
            off |= NEEDS_PRIVATE_RABBITMQ
        return self.faults & off

    def applicable_faults(self) -> frozenset[FaultKind]:
        """The kinds this run injects: those of its backend, on servers it may stop."""
        kinds = self.active_faults() - self.faults_off()
        if self.embedded:  # no server at all
            kinds -= NEEDS_PRIVATE_POSTGRES | NEEDS_PRIVATE_RABBITMQ
        return kinds

    def active_faults(self) -> frozenset[FaultKind]:
        """The kinds that apply to this backend."""
        return self.faults - SERVER_ONLY if self.embedded else self.faults
