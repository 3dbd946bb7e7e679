"""Shared fixtures; the helpers behind them live in tests/support.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support import StackFactory, stack_factory


@pytest.fixture
def make_stack(tmp_path: Path) -> StackFactory:
    """`async with make_stack(simulator_faults=..., faults=..., **settings) as stack:`."""
    return stack_factory(tmp_path)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client
