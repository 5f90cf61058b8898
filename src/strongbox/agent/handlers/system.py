"""System requests: liveness, what the guest looks like, and power-off."""

from __future__ import annotations

import os
import sys
import time

from strongbox import __version__
from strongbox.agent import state
from strongbox.agent.handlers import handler
from strongbox.container._syscalls import RB_AUTOBOOT, reboot
from strongbox.protocol import VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from strongbox.agent.server import Context

_MEMINFO_KEYS = {
    "MemTotal": "mem_total_kib",
    "MemFree": "mem_free_kib",
    "MemAvailable": "mem_available_kib",
    "Buffers": "buffers_kib",
    "Cached": "cached_kib",
    "Shmem": "shmem_kib",
    "SReclaimable": "sreclaimable_kib",
    "Slab": "slab_kib",
}


@handler("ping")
def ping(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return {"pong": True, "uptime_s": time.clock_gettime(time.CLOCK_BOOTTIME)}


def meminfo() -> dict[str, int]:
    """The /proc/meminfo fields strongbox reports, in KiB."""
    out: dict[str, int] = {}
    with open("/proc/meminfo") as f:
        for line in f:
            name, _, rest = line.partition(":")
            key = _MEMINFO_KEYS.get(name)
            if key:
                out[key] = int(rest.split()[0])
    # Same definition as procps `free`: what is neither free nor reclaimable cache.
    out["mem_used_kib"] = (out["mem_total_kib"] - out["mem_free_kib"] - out["buffers_kib"]
                           - out["cached_kib"] - out["sreclaimable_kib"])
    return out


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@handler("guest_info")
def guest_info(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {
        "kernel_release": os.uname().release,
        "cpus": os.cpu_count() or 1,
        "uptime_s": time.clock_gettime(time.CLOCK_BOOTTIME),
        "agent_version": __version__,
        "protocol_version": VERSION,
        "python_version": sys.version.split()[0],
        "agent_rss_kib": _rss_kib(),
        "sessions": ctx.server.sessions,
    }
    info.update(meminfo())
    info.update(state.timeline)
    return info


@handler("shutdown")
def shutdown(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Answer first, then power off once the answer has left the port.

    microvm has no ACPI, so "power off" is a reset that QEMU (run with
    ``-no-reboot``) turns into a clean exit; the kernel resets through a
    triple fault (``reboot=t`` on its command line).
    """
    def power_off() -> None:
        os.sync()
        reboot(RB_AUTOBOOT)

    ctx.server.after_flush(power_off)
    return {"shutting_down": True}
