"""Descriptor accounting for the fast tests: whatever a test opened, it closed."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager


def open_fds() -> set[int]:
    """This process's open descriptors (less the one that listed them, closed by now)."""
    return {int(n) for n in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{n}")}


@contextmanager
def no_new_fds(grace: float = 2.0) -> Iterator[None]:
    """Fail if descriptors opened inside the block are still open ``grace`` s after it
    (threads may close theirs a moment later)."""
    before = open_fds()
    yield
    deadline = time.monotonic() + grace
    while (leaked := open_fds() - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not leaked, f"file descriptors left open: {sorted(leaked)}"
