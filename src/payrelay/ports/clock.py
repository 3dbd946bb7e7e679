"""Time is passed in: every service takes a clock, and tests pass a fake one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

Clock = Callable[[], datetime]
