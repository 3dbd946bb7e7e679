"""A payrelay process on a skewed clock, through Debian's libfaketime (`apt-get install -y
faketime`), for the logic that compares times written by different processes: webhook
signature tolerance, leases, retry times, expiry, the reconciler's SLAs.

The library is preloaded (LD_PRELOAD, FAKETIME) rather than run through the `faketime`
command: that command forks and waits for its child, so the harness's SIGKILL would hit
the wrapper and leave the real process running. Only the wall clock is off: with the
monotonic clock faked too, asyncio's timers (and so every timeout) would jump as well.
"""

from __future__ import annotations

import glob

__all__ = ["FaketimeMissing", "faketime_library", "skewed_env"]

# The build for multi-threaded programs first: payrelay's processes run threads (aiosqlite's,
# the event loop's executor for DNS).
_LIBRARY_GLOBS = tuple(
    f"{prefix}/faketime/{name}"
    for name in ("libfaketimeMT.so.1", "libfaketime.so.1")
    for prefix in ("/usr/lib/*", "/usr/lib", "/usr/local/lib")
)


class FaketimeMissing(ValueError):
    """`clock_skew` was asked for, and libfaketime is not installed (a setting to fix)."""


def faketime_library() -> str:
    """The path of libfaketime; FaketimeMissing, saying how to install it, if it is not."""
    for pattern in _LIBRARY_GLOBS:
        if found := sorted(glob.glob(pattern)):
            return found[0]
    raise FaketimeMissing(
        "fault kind clock_skew needs libfaketime, which is not installed: run "
        "`apt-get install -y faketime` (Debian, Ubuntu), or leave clock_skew out of --faults"
    )


def skewed_env(env: dict[str, str], offset_seconds: float, library: str) -> dict[str, str]:
    """`env` for a process whose wall clock runs `offset_seconds` ahead (or behind)."""
    preload = " ".join(p for p in (library, env.get("LD_PRELOAD", "")) if p)
    return {
        **env,
        "LD_PRELOAD": preload,
        "FAKETIME": f"{round(offset_seconds):+d}",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
