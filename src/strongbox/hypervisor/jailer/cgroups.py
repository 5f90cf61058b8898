"""Cgroups caps a jailed QEMU's memory and number of tasks, on cgroup v2 or v1.

Each jail gets ``strongbox/<sandbox id>`` at the root of the hierarchy that
holds the controller (what runc's cgroupfs driver and Firecracker's jailer
do). Where the controllers are is read from ``/proc/self/mountinfo``:

* cgroup v2 (a normal Debian host: one ``cgroup2`` mount at /sys/fs/cgroup)
  is used when its root offers both ``memory`` and ``pids``; strongbox
  enables them in ``cgroup.subtree_control`` of the root and of
  ``strongbox/``, then writes ``memory.max`` and ``pids.max``;
* otherwise cgroup v1, one hierarchy per controller (``memory`` and
  ``pids`` mounts, e.g. /sys/fs/cgroup/memory): ``memory.limit_in_bytes``
  and ``pids.max``. A hybrid host's empty v2 hierarchy is skipped.

The VMM's process joins before it execs (:meth:`Cgroup.join`, in the child),
and the directories are removed once no task is left in them; a cgroup
still populated (its QEMU is still exiting) refuses, and the caller tries
again or leaves it to the next stale cleanup (:func:`remove_leftovers`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from strongbox.cgroupfs import parse_mountinfo
from strongbox.errors import HypervisorError

#: The directory under each hierarchy's root that holds one cgroup per jail.
PARENT = "strongbox"
CONTROLLERS = ("memory", "pids")
MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class Hierarchies:
    """Where the memory and pids controllers live on this host."""

    version: int
    memory: Path
    pids: Path

    def roots(self) -> list[Path]:
        """The hierarchy roots to create cgroups under (one if they share it)."""
        return [self.memory] if self.memory == self.pids else [self.memory, self.pids]


def _v2_controllers(root: Path) -> set[str]:
    try:
        return set((root / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


def detect(mountinfo: str | None = None) -> Hierarchies:
    """Prefer cgroup v2 when it offers memory and pids, else v1 memory + pids."""
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text()
        except OSError as exc:
            raise HypervisorError(f"jailer: cannot read {MOUNTINFO}: {exc.strerror}") from exc
    mounts = parse_mountinfo(mountinfo)
    for mount in mounts:
        if mount.version == 2 and set(CONTROLLERS) <= _v2_controllers(mount.path):
            return Hierarchies(2, mount.path, mount.path)
    v1: dict[str, Path] = {}
    for mount in mounts:
        if mount.version == 1:
            for controller in CONTROLLERS:
                if controller in mount.options:
                    v1.setdefault(controller, mount.path)
    if set(v1) == set(CONTROLLERS):
        return Hierarchies(1, v1["memory"], v1["pids"])
    raise HypervisorError("jailer: no cgroup hierarchy offers the memory and pids controllers "
                          "(neither cgroup v2 with both enabled nor cgroup v1 mounts of each)")


def _enable_v2(directory: Path) -> None:
    """Let ``directory``'s children use memory and pids (cgroup.subtree_control)."""
    control = directory / "cgroup.subtree_control"
    enabled = set(control.read_text().split())
    missing = [c for c in CONTROLLERS if c not in enabled]
    if missing:
        control.write_text(" ".join(f"+{c}" for c in missing))


def _populated(directory: Path) -> bool:
    try:
        return bool((directory / "cgroup.procs").read_text().strip())
    except FileNotFoundError:
        return False


class Cgroup:
    """The cgroup(s) of one jail: ``strongbox/<name>`` under each hierarchy root."""

    def __init__(self, hierarchies: Hierarchies, name: str) -> None:
        if not name or "/" in name or name in (".", ".."):
            raise HypervisorError(f"jailer: {name!r} cannot name a cgroup")
        self.hierarchies = hierarchies
        self.name = name
        self.paths = [root / PARENT / name for root in hierarchies.roots()]

    def limit_files(self, memory_bytes: int, pids_max: int) -> dict[Path, str]:
        """The files and values that cap this cgroup."""
        h = self.hierarchies
        memory = "memory.max" if h.version == 2 else "memory.limit_in_bytes"
        return {h.memory / PARENT / self.name / memory: str(memory_bytes),
                h.pids / PARENT / self.name / "pids.max": str(pids_max)}

    @classmethod
    def create(cls, name: str, *, memory_bytes: int, pids_max: int,
               hierarchies: Hierarchies | None = None) -> Cgroup:
        """Make the cgroup and write its limits (a leftover of the same name is reused)."""
        cgroup = cls(hierarchies or detect(), name)
        try:
            for root in cgroup.hierarchies.roots():
                if cgroup.hierarchies.version == 2:
                    _enable_v2(root)
                (root / PARENT).mkdir(exist_ok=True)
                if cgroup.hierarchies.version == 2:
                    _enable_v2(root / PARENT)
            for path in cgroup.paths:
                path.mkdir(exist_ok=True)
                if _populated(path):
                    raise HypervisorError(f"jailer: cgroup {path} is in use by another VM "
                                          f"named {name}")
            for file, value in cgroup.limit_files(memory_bytes, pids_max).items():
                file.write_text(value)
        except OSError as exc:
            cgroup.remove()
            raise HypervisorError(f"jailer: cgroup {exc.filename or name}: "
                                  f"{exc.strerror}") from exc
        return cgroup

    def join(self, pid: int) -> None:
        """Move ``pid`` into the cgroup (runs in the VMM's child, before the chroot)."""
        for path in self.paths:
            with open(path / "cgroup.procs", "w") as f:
                f.write(str(pid))

    def remove(self) -> bool:
        """Remove the cgroup's directories; False while a task is still in one."""
        done = True
        for path in self.paths:
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                done = False
        return done


def remove_leftovers(name: str, wait: float = 0.0) -> bool:
    """Remove a dead VM's cgroup, waiting up to ``wait`` s for its tasks to exit.

    Never fails: a host without the controllers simply has nothing to remove.
    """
    try:
        cgroup = Cgroup(detect(), name)
    except HypervisorError:
        return True
    deadline = time.monotonic() + wait
    while not cgroup.remove():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def idle_jails(older_than: float) -> list[str]:
    """Names of jail cgroups no task is in, made more than ``older_than`` s ago (a
    younger empty one may be a jail about to take its QEMU)."""
    try:
        roots = detect().roots()
    except HypervisorError:
        return []
    names: set[str] = set()
    busy: set[str] = set()
    now = time.time()
    for root in roots:
        try:
            entries = list((root / PARENT).iterdir())
        except OSError:
            continue
        for entry in entries:
            if not entry.is_dir():
                continue
            try:
                young = now - entry.stat().st_mtime < older_than
            except OSError:
                continue
            if _populated(entry) or young:
                busy.add(entry.name)
            else:
                names.add(entry.name)
    return sorted(names - busy)


def memory_limit_bytes(memory_mib: int, overhead_mib: int) -> int:
    """Guest RAM plus QEMU's own needs (its heap, the TCG translation cache)."""
    return (memory_mib + overhead_mib) * 1024 * 1024
