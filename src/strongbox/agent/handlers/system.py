"""System requests: liveness, what the guest looks like, and power-off."""

from __future__ import annotations

import os
import sys
import time

from strongbox import __version__
from strongbox.agent import state
from strongbox.agent.registry import handler
from strongbox.agent.server import RequestError
from strongbox.container._syscalls import RB_AUTOBOOT, reboot
from strongbox.protocol import E_NOT_FOUND, VERSION, verbs

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


@handler(verbs.PING)
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


@handler(verbs.GUEST_INFO)
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


@handler(verbs.SHUTDOWN)
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


#: <linux/random.h> ioctls on /dev/urandom.
_RNDADDENTROPY = 0x40085203
_RNDRESEEDCRNG = 0x5207


@handler(verbs.CLONE_IDENTITY)
def clone_identity(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """A VM cloned from a template wakes up as the template: make it itself.

    Every clone would otherwise share the template's hostname, a clock
    frozen at the moment the template was saved, and the very same kernel
    random state: the host's entropy is credited and the kernel's CRNG is
    forced to reseed, so no two clones produce the same random bytes.
    """
    import binascii
    import fcntl
    import struct

    from strongbox.container._syscalls import sethostname

    sethostname(params["hostname"])
    time.clock_settime_ns(time.CLOCK_REALTIME, params["time_ns"])
    seed = binascii.a2b_base64(params["entropy"])
    fd = os.open("/dev/urandom", os.O_WRONLY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, _RNDADDENTROPY, struct.pack("ii", len(seed) * 8, len(seed)) + seed)
        fcntl.ioctl(fd, _RNDRESEEDCRNG)
    finally:
        os.close(fd)
    state.timeline["cloned_at_s"] = time.clock_gettime(time.CLOCK_BOOTTIME)
    return {"hostname": os.uname().nodename}


#: What every container start imports; a VM template imports it before it is
#: saved, so that clones wake up with it already in memory.
WARM_MODULES = (
    "strongbox.container.launcher",
    "strongbox.container.cgroups",
    "strongbox.container.seccomp",
    "strongbox.container.capabilities",
    "strongbox.container.rootfs",
    "strongbox.agent.procfs",
    "strongbox.agent.nicslots",  # a clone configures its NICs first thing
)


@handler(verbs.WARM_UP)
def warm_up(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Do now the one-time work of the first container (imports), for templates."""
    import importlib

    started = time.monotonic()
    for name in WARM_MODULES:
        importlib.import_module(name)
    # the namespace unused NICs wait in: made here once, every clone wakes with it
    importlib.import_module("strongbox.agent.nicslots").spare()
    return {"seconds": time.monotonic() - started}


@handler(verbs.EJECT_SLOT)
def eject_slot(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Power off a hotplug slot whose device the host is unplugging (agent/pcislots.py)."""
    from strongbox.agent import pcislots

    try:
        pcislots.eject(params["port"])
    except (FileNotFoundError, ValueError) as exc:  # any other OSError is E_OS's
        raise RequestError(E_NOT_FOUND, str(exc)) from None
    return {}
