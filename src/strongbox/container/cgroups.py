"""Cgroups manages one cgroup v2 directory: create, limit, list, freeze, kill, measure, remove.

strongbox is cgroup v2 only: the guest kernel mounts the unified hierarchy
and nothing else. A cgroup is just a directory of interface files, so the
class does nothing but read and write files under ``path``, which is also
what lets the unit tests drive it against a fake directory tree.

Resources follow the OCI ``linux.resources`` object; the conversions to v2
files are the ones runc uses (:func:`resource_writes` is pure and tested on
its own). Controllers are enabled in every ancestor's
``cgroup.subtree_control`` on the way down from the hierarchy root, skipping
those the kernel does not offer. A missing interface file is ignored only
when its controller is genuinely absent from the cgroup; any other failure
is a ContainerError with stage ``cgroup``.
"""

from __future__ import annotations

import errno
import os
import time

from strongbox.container.errors import ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/sys/fs/cgroup"
CONTROLLERS = ("cpu", "cpuset", "memory", "pids")
_SIGKILL = 9

#: memory.stat keys reported by :meth:`Cgroup.stats`.
MEMORY_STAT_KEYS = ("anon", "file", "kernel", "kernel_stack", "pagetables", "sock", "shmem",
                    "file_mapped", "file_dirty", "file_writeback", "inactive_anon",
                    "active_anon", "inactive_file", "active_file", "unevictable", "slab",
                    "pgfault", "pgmajfault")
CPU_STAT_KEYS = ("usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled",
                 "throttled_usec")


def _limit(value: int, what: str) -> str:
    """-1 is "max", a positive number is itself."""
    if value == -1:
        return "max"
    if value < 0:
        raise ContainerError("cgroup", f"invalid {what} {value}")
    return str(value)


def swap_max(swap: int, limit: int | None) -> str | None:
    """OCI memory.swap (memory + swap together, v1 style) as v2 memory.swap.max (swap alone)."""
    if limit == -1 and swap == 0:
        return "max"  # "unlimited memory" means unlimited swap too, as with cgroup v1
    if swap == -1:
        return "max"
    if swap == 0:
        return None
    if not limit or limit < 0:
        raise ContainerError("cgroup", "memory.swap needs a memory.limit")
    if swap < limit:
        raise ContainerError("cgroup", f"memory.swap {swap} is below memory.limit {limit}")
    return str(swap - limit)


def cpu_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] mapped onto v2 cpu.weight [1, 10000]."""
    return max(1, min(10000, 1 + ((shares - 2) * 9999) // 262142))


def resource_writes(resources: dict[str, Any]) -> list[tuple[str, str]]:
    """The (file, value) writes that apply OCI ``linux.resources``, in order."""
    writes: list[tuple[str, str]] = []
    memory = resources.get("memory") or {}
    limit = memory.get("limit")
    if limit:
        writes.append(("memory.max", _limit(int(limit), "memory.limit")))
    if memory.get("reservation"):
        writes.append(("memory.low", _limit(int(memory["reservation"]), "memory.reservation")))
    if memory.get("swap") is not None or limit == -1:
        swap = swap_max(int(memory.get("swap") or 0), None if limit is None else int(limit))
        if swap is not None:
            writes.append(("memory.swap.max", swap))
    pids = resources.get("pids") or {}
    if "limit" in pids:
        pids_limit = int(pids["limit"])
        writes.append(("pids.max", str(pids_limit) if pids_limit > 0 else "max"))
    cpu = resources.get("cpu") or {}
    if cpu.get("shares"):
        writes.append(("cpu.weight", str(cpu_weight(int(cpu["shares"])))))
    quota, period = cpu.get("quota"), cpu.get("period")
    if quota or period:
        max_quota = str(int(quota)) if quota and int(quota) > 0 else "max"
        writes.append(("cpu.max", f"{max_quota} {int(period)}" if period else max_quota))
    if cpu.get("idle") is not None:
        writes.append(("cpu.idle", str(int(cpu["idle"]))))
    if cpu.get("cpus"):
        writes.append(("cpuset.cpus", str(cpu["cpus"])))
    if cpu.get("mems"):
        writes.append(("cpuset.mems", str(cpu["mems"])))
    for name, value in (resources.get("unified") or {}).items():
        if "/" in name or name.startswith("."):
            raise ContainerError("cgroup", f"invalid unified cgroup file name {name!r}")
        writes.append((name, str(value)))
    return writes


class Cgroup:
    """The cgroup v2 directory ``path`` in the hierarchy mounted at ``root``."""

    __slots__ = ("path", "root")

    def __init__(self, path: str, root: str = DEFAULT_ROOT) -> None:
        self.root = root.rstrip("/") or "/"
        self.path = path if path.startswith("/") else os.path.join(self.root, path)
        self.path = os.path.normpath(self.path)

    def __repr__(self) -> str:
        return f"Cgroup({self.path!r})"

    # -- files ---------------------------------------------------------------

    def _read(self, name: str, directory: str | None = None) -> str | None:
        try:
            with open(os.path.join(directory or self.path, name)) as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ContainerError.from_os("cgroup", f"read {self.path}/{name}", exc) from exc

    def _write(self, name: str, value: str, directory: str | None = None) -> None:
        path = os.path.join(directory or self.path, name)
        try:
            # Never O_CREAT: on cgroupfs a missing file must fail with ENOENT, not EACCES.
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise ContainerError.from_os("cgroup", f"write {value!r} to {path}", exc) from exc

    def controllers(self, directory: str | None = None) -> set[str]:
        """Controllers available in this cgroup (its ``cgroup.controllers``)."""
        return set((self._read("cgroup.controllers", directory) or "").split())

    # -- lifecycle -----------------------------------------------------------

    def create(self) -> None:
        """mkdir -p, enabling cpu, cpuset, memory and pids on the way down where offered."""
        relative = os.path.relpath(self.path, self.root)
        if relative == "." or relative.startswith(".."):
            raise ContainerError("cgroup", f"cgroup {self.path} is not below {self.root}")
        directory = self.root
        for part in relative.split("/"):
            self._enable_controllers(directory)
            directory = os.path.join(directory, part)
            try:
                os.mkdir(directory, 0o755)
            except FileExistsError:
                pass
            except OSError as exc:
                raise ContainerError.from_os("cgroup", f"mkdir {directory}", exc) from exc

    def _enable_controllers(self, directory: str) -> None:
        available = self.controllers(directory)
        enabled = set((self._read("cgroup.subtree_control", directory) or "").split())
        for name in CONTROLLERS:
            if name in available and name not in enabled:
                self._write("cgroup.subtree_control", f"+{name}", directory)

    def apply(self, resources: dict[str, Any]) -> None:
        """Write OCI ``linux.resources`` into the interface files."""
        available: set[str] | None = None
        for name, value in resource_writes(resources):
            try:
                self._write(name, value)
            except ContainerError as err:
                if err.errno != errno.ENOENT:
                    raise
                if available is None:
                    available = self.controllers()
                controller = name.split(".", 1)[0]
                if controller in CONTROLLERS and controller not in available:
                    continue  # the kernel has no such controller here: nothing to limit
                if name == "memory.swap.max" and value in ("max", "0"):
                    continue  # no swap accounting: "unlimited" or "none" needs no file
                raise

    def add(self, pid: int) -> None:
        self._write("cgroup.procs", str(pid))

    def _directories(self) -> list[str]:
        """This cgroup and every descendant, parents before children."""
        found = []
        for directory, _, _ in os.walk(self.path):
            found.append(directory)
        return found

    def procs(self) -> list[int]:
        """Every process in this cgroup and its descendants."""
        pids = []
        for directory in self._directories():
            for line in (self._read("cgroup.procs", directory) or "").split():
                pids.append(int(line))
        return pids

    def _wait_event(self, key: str, value: str, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for line in (self._read("cgroup.events") or "").splitlines():
                if line.split() == [key, value]:
                    return
            if time.monotonic() >= deadline:
                raise ContainerError("cgroup", f"{what} {self.path}: timed out after {timeout:g}s",
                                     errno.ETIMEDOUT)
            time.sleep(0.01)

    def freeze(self, timeout: float = 5.0) -> None:
        """Freeze every process below (cgroup.freeze) and wait until the kernel says frozen."""
        self._write("cgroup.freeze", "1")
        self._wait_event("frozen", "1", timeout, "freeze")

    def thaw(self, timeout: float = 5.0) -> None:
        self._write("cgroup.freeze", "0")
        self._wait_event("frozen", "0", timeout, "thaw")

    def kill(self) -> None:
        """SIGKILL everything below: cgroup.kill (Linux 5.14+), else one process at a time."""
        if os.path.exists(os.path.join(self.path, "cgroup.kill")):
            self._write("cgroup.kill", "1")
            return
        for pid in self.procs():
            try:
                os.kill(pid, _SIGKILL)
            except ProcessLookupError:
                pass

    def destroy(self, timeout: float = 5.0) -> None:
        """Kill what is left, wait until empty, remove the directories; fine if already gone."""
        if not os.path.isdir(self.path):
            return
        deadline = time.monotonic() + timeout
        while True:
            self.kill()
            if not self.procs():
                break
            if time.monotonic() >= deadline:
                raise ContainerError("cgroup", f"destroy {self.path}: processes survive "
                                     f"{timeout:g}s after SIGKILL", errno.EBUSY)
            time.sleep(0.01)
        for directory in reversed(self._directories()):
            while True:
                try:
                    os.rmdir(directory)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    if exc.errno == errno.EBUSY and time.monotonic() < deadline:
                        time.sleep(0.01)  # the last exiting task is still being released
                        continue
                    raise ContainerError.from_os("cgroup", f"rmdir {directory}", exc) from exc
                break

    # -- statistics ----------------------------------------------------------

    def _flat(self, name: str, keys: tuple[str, ...]) -> dict[str, int] | None:
        text = self._read(name)
        if text is None:
            return None
        values = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in keys:
                values[parts[0]] = int(parts[1])
        return values

    def _number(self, name: str) -> int | None:
        """A single-value file; "max" is reported as None (unlimited)."""
        text = self._read(name)
        if text is None or text.strip() == "max":
            return None
        return int(text.strip())

    def stats(self) -> dict[str, Any]:
        """Usage counters: {"memory": {...}, "pids": {...}, "cpu": {...}} for what exists.

        Limits of "max" are reported as None.
        """
        out: dict[str, Any] = {}
        if os.path.exists(os.path.join(self.path, "memory.current")):
            memory: dict[str, Any] = {"current": self._number("memory.current"),
                                      "max": self._number("memory.max"),
                                      "stat": self._flat("memory.stat", MEMORY_STAT_KEYS) or {}}
            events = self._flat("memory.events", ("oom", "oom_kill")) or {}
            memory["oom"] = events.get("oom", 0)
            memory["oom_kill"] = events.get("oom_kill", 0)
            out["memory"] = memory
        if os.path.exists(os.path.join(self.path, "pids.current")):
            out["pids"] = {"current": self._number("pids.current"),
                           "max": self._number("pids.max")}
        cpu = self._flat("cpu.stat", CPU_STAT_KEYS)
        if cpu is not None:
            out["cpu"] = cpu
        return out
