"""Timeline: one debug record per phase of a container's life, with how long it took.

``--debug`` (and ``--log`` at debug level) then reads as a start's timeline:
CLI start, template, prepare, QEMU ready, VM running, agent ready, identity,
network, rootfs attached, container created, process started, exit seen,
teardown. Both front doors get the same records because the phases are timed
where the work is done (:mod:`strongbox.sandbox`), not in the CLI or the shim.
Every record carries ``phase``, ``duration_s`` and ``subject`` attributes,
which the JSON log format writes as fields of their own, so benchmarks can
say where the time goes without parsing messages.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("strongbox.timeline")


def phase(subject: str, name: str, seconds: float, detail: str = "") -> None:
    """Record that ``subject`` (a sandbox or container id, or "cli") spent ``seconds`` in
    phase ``name``."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    log.debug("%s: phase %s %.3fs%s", subject, name, seconds, f" ({detail})" if detail else "",
              extra={"phase": name, "duration_s": round(seconds, 4), "subject": subject})


class Timeline:
    """Consecutive phases of one operation: each :meth:`lap` ends the phase that began at
    the previous one."""

    def __init__(self, subject: str, start: float | None = None) -> None:
        self.subject = subject
        self.mark = time.monotonic() if start is None else start

    def lap(self, name: str, detail: str = "", at: float | None = None) -> None:
        now = time.monotonic() if at is None else at
        phase(self.subject, name, now - self.mark, detail)
        self.mark = now


@contextmanager
def span(subject: str, name: str, detail: str = "") -> Iterator[None]:
    """Time the block as one phase (recorded even when it raises)."""
    started = time.monotonic()
    try:
        yield
    finally:
        phase(subject, name, time.monotonic() - started, detail)


def since_process_start() -> float:
    """Seconds since this process was forked (interpreter start-up and imports included)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError):
        return 0.0
