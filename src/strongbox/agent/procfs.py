"""Procfs reads what ``ps`` shows about one guest process from ``/proc``.

Every field comes from the kernel's own files, read with plain ``open``: a
process may exit between listing and reading, which is not an error (it is
simply left out). Pids are the guest's; ``ns_pid`` is the pid the process
has inside its own pid namespace (what ``ps`` in the container shows).
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def process_info(pid: int) -> dict[str, Any] | None:
    """One process as ``list_processes`` reports it, or None if it is gone."""
    try:
        stat = _read(f"/proc/{pid}/stat")
        status = _read(f"/proc/{pid}/status")
        cmdline = _read(f"/proc/{pid}/cmdline")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # proc(5): "pid (comm) state ppid ..."; comm may hold spaces and ")", so it
    # ends at the *last* ")". fields[0] is field 3 (state), fields[n - 3] field n.
    left, right = stat.index(b"("), stat.rindex(b")")
    fields = stat[right + 2:].split()
    ids: dict[bytes, list[bytes]] = {}
    for line in status.splitlines():
        key, _, rest = line.partition(b":")
        if key in (b"Uid", b"Gid", b"NSpid"):
            ids[key] = rest.split()
    args = cmdline.split(b"\0")
    if args and args[-1] == b"":
        args.pop()
    return {
        "pid": pid,
        "ppid": int(fields[1]),
        "uid": int(ids[b"Uid"][1]),  # effective, as ps shows it
        "gid": int(ids[b"Gid"][1]),
        "ns_pid": int(ids.get(b"NSpid", [str(pid).encode()])[-1]),
        "state": fields[0].decode(),
        "comm": stat[left + 1:right].decode(errors="replace"),
        "args": [a.decode(errors="replace") for a in args],
        "tty_nr": int(fields[4]),
        "cpu_ticks": int(fields[11]) + int(fields[12]),  # utime + stime
        "start_time_ticks": int(fields[19]),
    }


def list_processes(pids: list[int]) -> dict[str, Any]:
    """Several processes, with the clock they are measured by (ticks since guest boot)."""
    found = []
    for pid in sorted(pids):
        info = process_info(pid)
        if info is not None:
            found.append(info)
    return {"processes": found, "clock_ticks": os.sysconf("SC_CLK_TCK"),
            "uptime_s": time.clock_gettime(time.CLOCK_BOOTTIME)}
