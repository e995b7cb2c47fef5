from __future__ import annotations

import time
from collections.abc import Callable

import pytest

HANG_GUARD_S = 120.0


def wait_until(
    predicate: Callable[[], object], *, what: str, timeout_s: float = HANG_GUARD_S
) -> None:
    """Poll until `predicate()` is truthy; fail the test after the hang guard (reliability.md)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
