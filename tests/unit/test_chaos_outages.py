"""The faults that stop a server: planned only on servers the run started itself, each
with a window of a few seconds, and never two outages of one server at once."""

from __future__ import annotations

import itertools

import pytest

from payrelay.chaos import ChaosOptions, FaultKind
from payrelay.chaos.backing import Backing
from payrelay.chaos.options import (
    DEFAULT_FAULTS,
    NEEDS_PRIVATE_POSTGRES,
    NEEDS_PRIVATE_RABBITMQ,
    SERVER_ONLY,
)
from payrelay.chaos.outages import SERVER_OUTAGES, ServerOutages
from payrelay.chaos.schedule import (
    OUTAGE_SECONDS,
    QUIET_SECONDS,
    TAKING_TURNS,
    PlannedFault,
    plan_faults,
)

GIVEN = Backing("postgresql+asyncpg://pg/payments", "postgresql+asyncpg://pg/orders",
                "amqp://guest:guest@127.0.0.1:5672/", postgres_admin_url="postgresql://pg/x")


def test_private_servers_take_every_kind() -> None:
    assert ChaosOptions().applicable_faults() == DEFAULT_FAULTS
    assert ChaosOptions(faults=frozenset(FaultKind)).applicable_faults() == frozenset(FaultKind)
    assert ChaosOptions().faults_off() == frozenset()


def test_a_given_server_turns_off_the_faults_that_would_stop_it() -> None:
    given_postgres = ChaosOptions(private_postgres=False)
    assert given_postgres.faults_off() == NEEDS_PRIVATE_POSTGRES
    assert given_postgres.applicable_faults() == DEFAULT_FAULTS - NEEDS_PRIVATE_POSTGRES
    both = ChaosOptions(private_postgres=False, private_rabbitmq=False,
                        faults=frozenset({FaultKind.KILL, FaultKind.BROKER_STOP}))
    assert both.faults_off() == {FaultKind.BROKER_STOP}
    assert both.applicable_faults() == {FaultKind.KILL}


def test_an_embedded_run_has_no_server_to_stop() -> None:
    embedded = ChaosOptions(embedded=True)
    assert embedded.faults_off() == frozenset()  # nothing "off": there is no server at all
    assert embedded.applicable_faults() == (
        DEFAULT_FAULTS - SERVER_ONLY - NEEDS_PRIVATE_POSTGRES - NEEDS_PRIVATE_RABBITMQ)


def test_every_outage_kind_is_planned_with_a_window_of_a_few_seconds() -> None:
    planned = plan_faults(SERVER_OUTAGES, seed=4, window=60.0, targets=["w"])
    assert {f.kind for f in planned} == SERVER_OUTAGES
    for fault in planned:
        low, high = OUTAGE_SECONDS.get(fault.kind, (0.0, 0.0))
        assert low <= fault.seconds <= high and 0 <= fault.at < 60.0


@pytest.mark.parametrize("seed", [1, 11, 2026])
def test_outages_take_turns_with_quiet_time_between(seed: int) -> None:
    # Drawn independently, outages overlapped and a long run's backlog never drained.
    planned = plan_faults(frozenset(FaultKind), seed=seed, window=1800.0, targets=["w", "v"],
                          links=("postgres", "rabbitmq"))
    outages = [f for f in planned if f.kind in TAKING_TURNS]
    assert {f.kind for f in outages} == TAKING_TURNS
    for before, after in itertools.pairwise(outages):
        assert after.at >= before.at + before.seconds + QUIET_SECONDS[0]
    assert all(f.at + f.seconds < 1800.0 for f in outages)
    # The rest still fall at random, outages or not.
    assert sum(1 for f in planned if f.kind is FaultKind.KILL) > 100


def test_a_short_window_still_meets_every_outage_kind() -> None:
    planned = plan_faults(TAKING_TURNS, seed=5, window=30.0, targets=["w"], links=("postgres",))
    assert {f.kind for f in planned} == TAKING_TURNS
    assert all(0 <= f.at < 30.0 for f in planned)


@pytest.mark.parametrize("kind", [FaultKind.DB_DOWN, FaultKind.ORDERS_DB_DOWN])
async def test_an_outage_while_the_server_is_already_down_is_skipped(kind: FaultKind) -> None:
    outages = ServerOutages(down={"postgres"})
    detail = await outages.inject(PlannedFault(1.0, kind, seconds=3.0), GIVEN)
    assert detail.startswith("skipped: postgres already down")


@pytest.mark.parametrize("kind", sorted(SERVER_OUTAGES))
async def test_an_outage_never_reaches_a_given_server(kind: FaultKind) -> None:
    with pytest.raises(RuntimeError, match="would disturb a given one"):
        await ServerOutages().inject(PlannedFault(1.0, kind, seconds=0.1), GIVEN)
