"""Hostcgroup places a sandbox's host processes in the cgroup its spec names.

Docker, podman and the kubelet choose a cgroup for each container
(``linux.cgroupsPath``) and read it back for ``docker stats``, ``podman
stats`` and pod accounting; the host enforces the container's size there.
For a VM the processes that *are* the container on the host are its owner
(the monitor or the shim) and QEMU, so both go there (Kata's
``sandbox_cgroup_only``): the owner joins before it spawns QEMU, which
inherits the cgroup (a jail then makes no cgroup of its own), and the limits
are the container's plus the VM's overhead (:mod:`.cgroupspath`).

``runtime.sandbox_cgroup_with_emulator`` (False by default, as in the
StratoVirt configuration strongbox follows) says whether QEMU's emulator
threads (every thread but its vCPUs: the main loop, I/O, RCU) count against
the container's CPU. When False, on cgroup v1 they are moved, by tid, in the
CPU hierarchies (``cpu``, ``cpuacct``) to ``strongbox_overhead/<sandbox
id>``, unconstrained, so the quota and the usage are the vCPUs' (and the
owner's small relaying); memory and tasks are per process and always count.
cgroup v2 cannot put a process's threads in two domains, so there the key
has no effect (a debug record says so).

The cgroup's name is recorded in the run directory (:data:`RECORD`) before
anything joins it, so the stale cleanup of a killed owner removes it too
(:func:`remove_recorded`). On a normal teardown the owner first moves back
to the cgroups it came from, then the directories are removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongbox.atomicfile import atomic_write
from strongbox.cgroupfs import parse_mountinfo
from strongbox.config import Config
from strongbox.errors import SandboxError
from strongbox.sandbox.cgroupspath import HostLimits, limits_for, relative_dir

log = logging.getLogger("strongbox.sandbox")
#: The run directory's record of the host cgroup (for the stale cleanup).
RECORD = "host-cgroup.json"
#: Where emulator threads go when they do not count against the container.
OVERHEAD = "strongbox_overhead"
#: v1 controllers whose placement is per thread (``tasks``), and that the emulator leaves.
CPU_CONTROLLERS = frozenset({"cpu", "cpuacct"})
V1_CONTROLLERS = frozenset({"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer",
                            "hugetlb", "memory", "misc", "net_cls", "net_prio", "perf_event",
                            "pids", "rdma"})
V2_WANTED = ("cpu", "cpuset", "memory", "pids")


@dataclass(frozen=True)
class Hierarchy:
    """One cgroup hierarchy: where it is mounted and what it controls."""

    root: Path
    version: int
    #: v1: the controllers (and ``name=...``) bound to it; v2: those its root offers.
    controllers: frozenset[str]


def host_hierarchies(mountinfo: str | None = None) -> list[Hierarchy]:
    """The hierarchies a sandbox joins: every v1 one (v1 or hybrid host), else the v2 one."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    mounts = parse_mountinfo(text)
    found: list[Hierarchy] = []
    for mount in mounts:
        if mount.version != 1:
            continue
        controllers = frozenset(o for o in mount.options
                                if o in V1_CONTROLLERS or o.startswith("name="))
        if controllers and all(h.controllers != controllers for h in found):
            found.append(Hierarchy(mount.path, 1, controllers))
    if found:
        return found
    for mount in mounts:
        if mount.version == 2:
            with contextlib.suppress(OSError):
                offered = frozenset((mount.path / "cgroup.controllers").read_text().split())
                return [Hierarchy(mount.path, 2, offered)]
    return []


def _own_cgroups() -> dict[frozenset[str], str]:
    """This process's cgroup in each hierarchy (``/proc/self/cgroup``), by controllers."""
    own: dict[frozenset[str], str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        own[frozenset(controllers.split(",")) if controllers else frozenset()] = path
    return own


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _key(hierarchy: Hierarchy) -> frozenset[str]:
    return hierarchy.controllers if hierarchy.version == 1 else frozenset()


class HostCgroup:
    """``relative`` under each hierarchy: the owner and QEMU of sandbox ``sandbox_id``."""

    def __init__(self, relative: str, sandbox_id: str, *, with_emulator: bool,
                 limits: HostLimits | None = None,
                 hierarchies: list[Hierarchy] | None = None) -> None:
        self.relative = relative
        self.sandbox_id = sandbox_id
        self.with_emulator = with_emulator
        self.limits = limits
        self.hierarchies = host_hierarchies() if hierarchies is None else hierarchies
        self._came_from: dict[frozenset[str], str] = {}

    def path(self, hierarchy: Hierarchy) -> Path:
        return hierarchy.root / self.relative

    def _overheads(self) -> list[Hierarchy]:
        if self.with_emulator:
            return []
        return [h for h in self.hierarchies if h.version == 1 and h.controllers & CPU_CONTROLLERS]

    def record(self, run_dir: Path) -> None:
        """Note the cgroup in the run directory, before it exists (crash cleanup)."""
        atomic_write(run_dir / RECORD, json.dumps(
            {"path": self.relative, "sandbox": self.sandbox_id,
             "overhead": not self.with_emulator}).encode(), 0o600)

    @classmethod
    def for_spec(cls, spec: dict[str, Any], config: Config, sandbox_id: str,
                 memory_mib: int) -> HostCgroup | None:
        """The host cgroup of a sandbox whose first container has ``spec`` (None: the
        spec names none)."""
        value = spec.get("linux", {}).get("cgroupsPath")
        if not value:
            return None
        runtime = config.runtime
        return cls(relative_dir(value), sandbox_id,
                   with_emulator=runtime.sandbox_cgroup_with_emulator,
                   limits=limits_for(spec, memory_mib,
                                     memory_overhead_mib=runtime.sandbox_cgroup_memory_overhead,
                                     pids_overhead=runtime.sandbox_cgroup_pids_overhead))

    def create(self) -> None:
        """Make the cgroup (and missing parents) and write its limits."""
        limits = self.limits or HostLimits(memory_bytes=-1)
        current = None
        try:
            for hierarchy in self.hierarchies:
                current = self.path(hierarchy)
                if hierarchy.version == 2:
                    self._create_v2(hierarchy, limits)
                else:
                    self._create_v1(hierarchy, limits)
        except OSError as exc:
            self.remove(wait=0)
            raise SandboxError(f"host cgroup {exc.filename or current}: {exc.strerror}") from exc

    def _create_v1(self, hierarchy: Hierarchy, limits: HostLimits) -> None:
        path = self.path(hierarchy)
        path.mkdir(parents=True, exist_ok=True)
        if "cpuset" in hierarchy.controllers:
            _inherit_cpuset(hierarchy.root, self.relative)
            for name, value in limits.cpuset().items():
                _write(path / name, value)
        for controller, files in limits.v1_files().items():
            if controller in hierarchy.controllers:
                for name, value in files.items():
                    _write(path / name, value)

    def _create_v2(self, hierarchy: Hierarchy, limits: HostLimits) -> None:
        wanted = [c for c in V2_WANTED if c in hierarchy.controllers]
        directory = hierarchy.root
        for part in self.relative.split("/"):
            control = directory / "cgroup.subtree_control"
            enabled = set(control.read_text().split())
            missing = [c for c in wanted if c not in enabled]
            if missing:
                _write(control, " ".join(f"+{c}" for c in missing))
            directory = directory / part
            directory.mkdir(exist_ok=True)
        files = {**limits.v2_files(), **limits.cpuset()}
        for name, value in files.items():
            if name.split(".")[0] in hierarchy.controllers:
                _write(directory / name, value)

    def enter(self) -> None:
        """Move this process (the owner) in; what it spawns from now on starts there."""
        own = _own_cgroups()
        for hierarchy in self.hierarchies:
            key = _key(hierarchy)
            self._came_from[key] = own.get(key, "/")
            try:
                _write(self.path(hierarchy) / "cgroup.procs", str(os.getpid()))
            except OSError as exc:
                raise SandboxError(f"host cgroup {self.path(hierarchy)}: joining it: "
                                   f"{exc.strerror}") from exc

    def take_in(self, vmm_pid: int) -> None:
        """Move a VMM started elsewhere (a pooled VM's, by its keeper) in, then settle it."""
        for hierarchy in self.hierarchies:
            try:
                _write(self.path(hierarchy) / "cgroup.procs", str(vmm_pid))
            except OSError as exc:
                raise SandboxError(f"host cgroup {self.path(hierarchy)}: moving the VMM in: "
                                   f"{exc.strerror}") from exc
        self.settle(vmm_pid)

    def settle(self, vmm_pid: int) -> None:
        """Once QEMU runs: its emulator threads leave the CPU hierarchies (see the module)."""
        if not self.with_emulator and any(h.version == 2 for h in self.hierarchies):
            log.debug("host cgroup %s: cgroup v2 counts QEMU's emulator threads against it "
                      "(sandbox_cgroup_with_emulator = false needs cgroup v1)", self.relative)
        overheads = self._overheads()
        if not overheads:
            return
        try:
            tids = os.listdir(f"/proc/{vmm_pid}/task")
        except OSError:
            return  # QEMU is gone: the teardown follows
        for hierarchy in overheads:
            target = hierarchy.root / OVERHEAD / self.sandbox_id
            target.mkdir(parents=True, exist_ok=True)
            for tid in tids:
                with contextlib.suppress(OSError):  # a thread that just ended
                    comm = Path(f"/proc/{vmm_pid}/task/{tid}/comm").read_text()
                    if not comm.startswith("CPU "):  # QEMU names vCPU threads "CPU n/TCG"
                        _write(target / "tasks", tid)

    def leave(self) -> None:
        """Move the owner back where it came from (it is about to remove the cgroup)."""
        for hierarchy in self.hierarchies:
            origin = self._came_from.pop(_key(hierarchy), None)
            if origin is not None:
                with contextlib.suppress(OSError):
                    _write(hierarchy.root / origin.lstrip("/") / "cgroup.procs",
                           str(os.getpid()))

    def remove(self, wait: float = 5.0) -> bool:
        """Leave, then remove the cgroup's directories (waiting up to ``wait`` s for a
        dying QEMU to leave them); False if one is still in use."""
        self.leave()
        dirs = [self.path(h) for h in self.hierarchies]
        dirs += [h.root / OVERHEAD / self.sandbox_id for h in self._overheads()]
        deadline = time.monotonic() + wait
        while True:
            dirs = [d for d in dirs if not _rmdir(d)]
            if not dirs:
                return True
            if time.monotonic() >= deadline:
                log.warning("host cgroup %s is still in use; left in place", dirs[0])
                return False
            time.sleep(0.02)


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _inherit_cpuset(root: Path, relative: str) -> None:
    """v1 cpuset: a new cgroup's cpus and mems start empty and must be set before a task
    can join; each level below the root takes its parent's."""
    directory = root
    for part in relative.split("/"):
        parent, directory = directory, directory / part
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not (directory / name).read_text().strip():
                _write(directory / name, (parent / name).read_text().strip())


def recorded(run_dir: Path) -> HostCgroup | None:
    """The host cgroup a (dead) owner recorded in ``run_dir``, if any."""
    try:
        record = json.loads((run_dir / RECORD).read_text())
        relative, sandbox_id = str(record["path"]), str(record["sandbox"])
        overhead = bool(record.get("overhead"))
        return HostCgroup(relative_dir(relative), sandbox_id, with_emulator=not overhead)
    except (OSError, ValueError, KeyError, TypeError, SandboxError):
        return None
