"""Facilities: what strongbox needs of the host kernel, found by trying it.

Each check opens, reads or calls the thing itself rather than guessing from
versions: ``/dev/net/tun`` (every NIC slot is a tap), ``/dev/vhost-net``
(optional: QEMU moves frames itself without it), the cgroup hierarchies and
the controllers a sandbox's host cgroup uses, user namespaces (reported; the
jailer confines QEMU with a uid of its own instead), the new mount API
(``open_tree``: how shares reach a running VM), and the memory one default VM
takes.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from strongbox.config import Config
from strongbox.hypervisor.base import MISSING, OK, WARNING, Finding
from strongbox.sandbox.hostcgroup import V2_WANTED, host_hierarchies

#: Controllers a sandbox's host cgroup sets limits in (the spec's memory, CPU and pids).
NEEDED_CONTROLLERS = ("cpu", "memory", "pids")


def tun(config: Config, device: str = "/dev/net/tun") -> Finding:
    try:
        os.close(os.open(device, os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        if config.network.internetworking_model == "none":
            return Finding("tun", OK, f"{device}: {exc.strerror} (not needed: "
                           "internetworking_model = 'none')")
        return Finding("tun", MISSING, f"{device}: {exc.strerror}: every NIC slot is a tap "
                       "(or set [network] internetworking_model = 'none')")
    return Finding("tun", OK, f"{device} opens: NIC slots can be taps")


def vhost_net(config: Config, device: str = "/dev/vhost-net") -> Finding:
    try:
        os.close(os.open(device, os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        return Finding("vhost-net", WARNING, f"{device}: {exc.strerror}: QEMU moves every "
                       "frame itself (slower networking)")
    used = "unused: [network] disable_vhost_net = true" if config.network.disable_vhost_net \
        else "used"
    return Finding("vhost-net", OK, f"{device} opens ({used})")


def cgroups(mountinfo: str | None = None) -> Finding:
    try:
        found = host_hierarchies(mountinfo)
    except OSError as exc:
        return Finding("cgroups", MISSING, f"/proc/self/mountinfo: {exc.strerror}")
    if not found:
        return Finding("cgroups", MISSING, "no cgroup hierarchy is mounted")
    controllers = frozenset().union(*(h.controllers for h in found))
    version = "v2" if found[0].version == 2 else (
        "v1 (hybrid: a v2 tree beside it)" if mountinfo is None and
        Path("/sys/fs/cgroup/unified").is_dir() else "v1")
    lacking = [c for c in (V2_WANTED if found[0].version == 2 else NEEDED_CONTROLLERS)
               if c not in controllers]
    if lacking:
        return Finding("cgroups", MISSING, f"{version}: no {', '.join(lacking)} controller: "
                       "a container's limits cannot be set on its VM")
    have = ", ".join(sorted(c for c in controllers if not c.startswith("name=")))
    return Finding("cgroups", OK, f"{version}: {have}")


def user_namespaces(path: str = "/proc/sys/user/max_user_namespaces") -> Finding:
    try:
        limit = int(Path(path).read_text())
    except (OSError, ValueError):
        return Finding("user namespaces", WARNING, f"{path} unreadable (not needed: the "
                       "jailer runs QEMU as a uid of its own)")
    if limit <= 0:
        return Finding("user namespaces", WARNING, "disabled (not needed: the jailer runs "
                       "QEMU as a uid of its own)")
    return Finding("user namespaces", OK, f"available (up to {limit}); the jailer runs QEMU "
                   "as a uid of its own instead")


def mount_api() -> Finding:
    """open_tree(2), the call that attaches shares to running VMs (:func:`mountapi.probe`)."""
    from strongbox.mountapi import probe

    try:
        probe()
    except OSError as exc:
        hint = " (Linux 5.2+ is needed: pod members and shares reach running VMs with it)" \
            if exc.errno == errno.ENOSYS else ""
        return Finding("mount API", MISSING, f"{exc.strerror}{hint}")
    return Finding("mount API", OK, "open_tree, move_mount and mount_setattr available")


def memory(vm_mib: int, meminfo: str | None = None) -> Finding:
    """MemAvailable against one VM of the default size (``vm_mib``: its RAM and margin)."""
    text = meminfo if meminfo is not None else Path("/proc/meminfo").read_text()
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        available = int(fields["MemAvailable"].split()[0]) // 1024
    except (KeyError, ValueError, IndexError):
        return Finding("memory", WARNING, "MemAvailable not in /proc/meminfo")
    if available < vm_mib:
        return Finding("memory", MISSING, f"{available} MiB available, a default VM needs "
                       f"{vm_mib} MiB")
    return Finding("memory", OK, f"{available:,} MiB available: about {available // vm_mib} "
                   f"default VMs of {vm_mib} MiB")
