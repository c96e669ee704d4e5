"""Waiting on conditions instead of sleeping: tests order themselves by what they observe."""

from __future__ import annotations

import time
from collections.abc import Callable

HANG_GUARD = 30.0  # seconds; only a failing (hung) test ever waits this long


def wait_for(cond: Callable[[], object], what: str, timeout: float = HANG_GUARD) -> None:
    """Return once ``cond()`` is true; fail the test with ``what`` if it never becomes so."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} (waited {timeout:.0f} s)")
        time.sleep(0.005)
