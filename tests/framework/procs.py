"""Looking for processes the way a leak detector would: through /proc."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def _live_processes() -> Iterator[tuple[int, bytes]]:
    """(pid, command line) of every process that is not a zombie."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if ") Z " not in stat:
            yield int(entry), cmdline


def pids_with_cmdline(fragment: str, *also: str) -> list[int]:
    """Live processes whose command line contains ``fragment`` and every one of ``also``
    (read once per process: one that exits meanwhile is simply not listed)."""
    needles = [f.encode() for f in (fragment, *also)]
    return [pid for pid, cmdline in _live_processes() if all(n in cmdline for n in needles)]


def _root(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/root")
    except OSError:
        return ""


def qemu_pids(marker: str) -> list[int]:
    """QEMU processes of ``marker`` (e.g. a test's root dir): its command line names it
    (a 9p export, a template's memory file), or the process is jailed beneath it."""
    return [pid for pid, cmdline in _live_processes()
            if b"qemu-system" in cmdline.split(b"\0")[0]
            and (marker.encode() in cmdline or _root(pid).startswith(marker))]


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def dead_process() -> tuple[int, int]:
    """The pid and start ticks of a process that has exited (and been reaped)."""
    from strongbox.runtime.state import process_start_ticks

    proc = subprocess.Popen(["sleep", "30"])
    ticks = process_start_ticks(proc.pid)
    proc.kill()
    proc.wait()
    assert ticks is not None
    return proc.pid, ticks
