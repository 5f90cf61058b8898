"""GC finds what dead sandboxes left on this host, says what it is, and removes it.

Every VM's host-side state hangs off its run directory (:mod:`.rundir`): the
owner (a CLI monitor, a shim, a pool keeper) holds its lock for the VM's life,
and the directory records what the owner made outside it (the host cgroup, the
block devices taken from the host, tc redirects on an engine's veths). So a
directory whose lock is free is a dead sandbox, and its records say what is left:
:func:`dead_vms` reads them without touching anything, :func:`remove` reaps one
exactly as a later ``delete`` would (:func:`.rundir.collect`). A jailed QEMU's
cgroup outlives a crash outside any run directory; one with no task in it is a
leftover too (:func:`strongbox.hypervisor.idle_jails`), and so is a QEMU whose run
directory is gone (:func:`strongbox.hypervisor.orphan_vmms`: nobody can own it). A
live owner's directory is never listed, so a live sandbox is never touched.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from strongbox.hypervisor import idle_jails, orphan_vmms, remove_leftovers, vmm_processes
from strongbox.sandbox import blockroot, hostcgroup, rundir
from strongbox.sandbox.network.slots import RECORD as NETWORK_RECORD


@dataclass(frozen=True)
class Leftover:
    """One dead sandbox's remains (``kind`` "vm"), or a jail cgroup alone ("jail")."""

    kind: str
    name: str
    root: Path | None
    #: What removing it undoes, in words, for the report.
    parts: tuple[str, ...]


def _qemu_running(path: Path) -> str | None:
    pid = vmm_processes([path]).get(path)
    return f"QEMU pid {pid}" if pid is not None else None


def _splices(path: Path) -> list[str]:
    try:
        record = json.loads((path / NETWORK_RECORD).read_text())
        netns = str(record.get("netns") or "")
        splices = [f"tc redirect on {veth} in {netns}" for veth, _ in record.get("splices") or []]
    except (OSError, ValueError, TypeError, AttributeError):
        return []
    return splices if netns and os.path.exists(netns) else []


def describe(path: Path) -> tuple[str, ...]:
    """What reaping the dead run directory ``path`` would undo."""
    parts = [p for p in [_qemu_running(path)] if p]
    parts += [f"{m.device} to mount back at {m.mount_point}" for m in blockroot.recorded(path)]
    cgroup = hostcgroup.recorded(path)
    if cgroup is not None:
        parts.append(f"host cgroup {cgroup.relative}")
    parts += _splices(path)
    parts.append(f"run directory {path}")
    return tuple(parts)


def dead_vms(root: Path) -> list[Leftover]:
    """The dead sandboxes under ``root`` (its ``vms/``), nothing changed."""
    return [Leftover("vm", path.name, root, describe(path))
            for path in rundir.run_dirs(root) if rundir.owner_gone(path)]


def idle_jail_cgroups(live: set[str]) -> list[Leftover]:
    """Jail cgroups with no process in them, of VMs not running in a root looked at."""
    return [Leftover("jail", name, None, (f"jail cgroup strongbox/{name}",))
            for name in idle_jails() if name not in live]


def orphan_qemus() -> list[Leftover]:
    """QEMU processes whose run directory is gone: nobody owns them any more."""
    return [Leftover("qemu", str(pid), None, (f"QEMU pid {pid} of the removed {run_dir}",))
            for pid, run_dir in sorted(orphan_vmms().items())]


def remove(leftover: Leftover) -> bool:
    """Reap it; False if it came to life meanwhile or could not go yet (it stays)."""
    if leftover.kind == "qemu":
        pid = int(leftover.name)
        try:
            if pid in orphan_vmms():  # still that QEMU, still nobody's
                os.kill(pid, signal.SIGKILL)
            else:
                os.kill(pid, 0)  # gone (True), or someone's after all (it stays)
                return False
        except ProcessLookupError:
            pass
        return True
    if leftover.kind == "vm":
        assert leftover.root is not None
        return rundir.collect(leftover.root, leftover.name, wait=0.0)
    remove_leftovers(leftover.name, wait=0.5)
    return leftover.name not in idle_jails(older_than=0.0)
