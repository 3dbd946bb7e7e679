"""Shared fixtures; the helpers behind them live in tests/support.py."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support import StackFactory, stack_factory


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """sqlite unless a module parametrizes it: `parametrize("backend", [...], indirect=True)`."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def make_stack(tmp_path: Path, backend: str) -> StackFactory:
    """`async with make_stack(simulator_faults=..., faults=..., **settings) as stack:`."""
    return functools.partial(stack_factory(tmp_path), backend=backend)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client
