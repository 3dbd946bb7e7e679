"""What only the memory database needs saying: how its transactions and outages behave."""

from __future__ import annotations

import pytest

from payrelay.adapters import memory
from payrelay.domain.errors import StorageUnavailable
from tests.contract.builders import AT, notification
from tests.simulated_gateway import ManualClock


async def test_a_draft_is_invisible_until_its_commit() -> None:
    db = memory.payments_database()
    uow = memory.MemoryPaymentsUnitOfWork(db, ManualClock(AT))
    async with uow.begin() as tx:
        await tx.notifications.record(notification(key="k"))
        assert db.state.notifications == {}  # readers see the last commit only
    assert len(db.state.notifications) == 1
    assert db.commits == 1


async def test_a_transaction_inside_another_fails_instead_of_hanging() -> None:
    db = memory.payments_database()
    async with db.transaction():
        with pytest.raises(RuntimeError, match="inside another"):
            async with db.transaction():
                pass


async def test_a_switched_off_database_is_unavailable_to_writes_and_reads() -> None:
    db = memory.payments_database()
    db.available = False
    with pytest.raises(StorageUnavailable):
        await memory.MemoryNotificationLog(db).record(notification())
    with pytest.raises(StorageUnavailable):
        await memory.MemoryReconciliationStore(db).unsettled(updated_before=AT, limit=1)
    db.available = True
    assert await memory.MemoryNotificationLog(db).record(notification())
