"""`eventually` names what it waited for when it gives up."""

from __future__ import annotations

import pytest

from tests.support import eventually


async def test_a_wait_that_runs_out_says_what_it_waited_for() -> None:
    async def never() -> bool:
        return False

    with pytest.raises(pytest.fail.Exception, match="order order-1 paid: still not true"):
        await eventually(never, timeout=0.05, what="order order-1 paid")


async def test_a_wait_that_holds_returns() -> None:
    async def always() -> bool:
        return True

    await eventually(always, timeout=0.05, what="anything")
