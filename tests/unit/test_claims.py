"""`holding`: claims renewed while the work is in hand, and never after the block."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from payrelay.domain.errors import StorageUnavailable
from payrelay.ports import FailedTry
from payrelay.services.claims import holding

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(milliseconds=30)  # a heartbeat every 10 ms


def clock() -> datetime:
    return T0


class RecordingQueue:
    """A WorkQueue[str] that records each extend; `gate`, when set, holds extends open."""

    def __init__(self, *, failing: bool = False) -> None:
        self.extends: list[tuple[list[str], datetime]] = []
        self.failing = failing
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self._counted = asyncio.Condition()

    async def claim_due(self, *, limit: int, now: datetime, lease: timedelta) -> list[str]:
        return []

    async def extend(self, work: Sequence[str], *, until: datetime) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        async with self._counted:
            self.extends.append((list(work), until))
            self._counted.notify_all()
        if self.failing:
            raise StorageUnavailable("database unavailable: connection refused")

    async def record_failures(self, failed: Sequence[FailedTry[str]], *, now: datetime) -> None:
        raise AssertionError("not used")

    async def until_extended(self, times: int) -> None:
        async with asyncio.timeout(5), self._counted:
            await self._counted.wait_for(lambda: len(self.extends) >= times)


async def test_claims_are_renewed_every_third_of_a_lease_while_the_block_runs():
    queue = RecordingQueue()
    async with holding(queue, ["a", "b"], lease=LEASE, clock=clock):
        await queue.until_extended(3)
    assert all(entry == (["a", "b"], T0 + LEASE) for entry in queue.extends)


async def test_the_block_ends_only_after_an_extend_in_flight_so_nothing_follows_it():
    queue = RecordingQueue()
    queue.gate = asyncio.Event()
    finished = asyncio.Event()

    async def work() -> None:
        async with holding(queue, ["a"], lease=LEASE, clock=clock):
            await queue.entered.wait()  # a heartbeat is in flight now
        finished.set()

    task = asyncio.create_task(work())
    await queue.entered.wait()
    await asyncio.sleep(0)
    assert not finished.is_set(), "the block ended while its heartbeat was still writing"
    queue.gate.set()
    await task
    count = len(queue.extends)
    await asyncio.sleep(LEASE.total_seconds() * 2)
    assert len(queue.extends) == count == 1  # and none after the block


async def test_a_failing_heartbeat_is_logged_once_and_the_work_goes_on(
    caplog: pytest.LogCaptureFixture,
):
    queue = RecordingQueue(failing=True)
    with caplog.at_level(logging.WARNING, logger="payrelay.services.claims"):
        async with holding(queue, ["a"], lease=LEASE, clock=clock):
            await queue.until_extended(3)
    lines = [r.getMessage() for r in caplog.records if r.name == "payrelay.services.claims"]
    assert len(lines) == 1 and "connection refused" in lines[0]


async def test_no_work_no_heartbeat():
    queue = RecordingQueue()
    async with holding(queue, [], lease=LEASE, clock=clock):
        await asyncio.sleep(LEASE.total_seconds() * 2)
    assert queue.extends == []
