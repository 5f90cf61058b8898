"""Hostproc reads what a QEMU process costs the host from ``/proc``: CPU time and memory.

PSS (``smaps_rollup``) counts shared pages once per sharer, so a template's
clones, which share its memory file, add up to what they really cost; RSS
counts each fully.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessCost:
    cpu_seconds: float
    rss_bytes: int
    pss_bytes: int


def _kib(text: str, key: str) -> int:
    for line in text.splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    return 0


def cost(pid: int) -> ProcessCost | None:
    """The process's CPU time (user + system) and memory; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                pss = _kib(f.read(), "Pss:")
        except OSError:
            pss = 0
    except (OSError, IndexError):
        return None
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15
    return ProcessCost((int(fields[11]) + int(fields[12])) / _TICKS, _kib(status, "VmRSS:"), pss)

