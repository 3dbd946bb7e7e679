"""The event loop every payrelay command runs on: uvloop where it is installed (issue 10).

uvloop (libuv) runs the same asyncio code with cheaper sockets, timers and callbacks than
the standard selector loop. Without it (an unsupported platform) the standard loop runs,
with nothing else changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["run"]

T = TypeVar("T")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop where it is installed."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)
