"""A MercadoPago-compatible gateway simulator: payments, refunds, signed webhooks, faults.

In process: `async with GatewaySimulator(...) as sim`. Over HTTP: `async with
SimulatorServer(sim) as server` (tests) or `run_simulator(host, port, ...)` (the CLI).
"""

from __future__ import annotations

from payrelay.simulator.app import create_app
from payrelay.simulator.errors import (
    BadRequest,
    InjectedFailure,
    NotFound,
    SimulatorError,
    Unauthorized,
)
from payrelay.simulator.faults import SimulatorFaults
from payrelay.simulator.ledger import LedgerEntry
from payrelay.simulator.notifier import DeliveryPolicy, NotificationStyle
from payrelay.simulator.records import Outcome, Status
from payrelay.simulator.server import SimulatorServer, run_simulator
from payrelay.simulator.serving import EmbeddedServer
from payrelay.simulator.state import GatewaySimulator
from payrelay.simulator.stats import SimulatorStats

__all__ = [
    "BadRequest",
    "DeliveryPolicy",
    "EmbeddedServer",
    "GatewaySimulator",
    "InjectedFailure",
    "LedgerEntry",
    "NotFound",
    "NotificationStyle",
    "Outcome",
    "SimulatorError",
    "SimulatorFaults",
    "SimulatorServer",
    "SimulatorStats",
    "Status",
    "Unauthorized",
    "create_app",
    "run_simulator",
]
