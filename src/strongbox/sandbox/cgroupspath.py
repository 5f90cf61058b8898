"""Cgroupspath turns a spec's ``linux.cgroupsPath`` and limits into host cgroup terms.

Pure logic, no file system: :mod:`.hostcgroup` does the placing. The forms
callers send (see docs/cli.md "Host cgroups"):

* cgroupfs paths, e.g. Docker's ``/docker/<id>``, podman's
  ``/libpod_parent/libpod-<id>``, the kubelet's
  ``/kubepods/burstable/pod<uid>/<id>``. An absolute path is relative to
  each hierarchy's mount point (the runtime-spec's rule); a relative one is
  taken the same way (the spec leaves it to the runtime; the same value must
  always land in the same place, and this does);
* systemd's ``slice:prefix:name`` (podman's ``machine.slice:libpod:<id>``,
  Docker's ``system.slice:docker:<id>``): the unit is ``<prefix>-<name>.scope``
  (a name ending ``.slice`` is used as is) inside the slice's expanded path
  (``a-b.slice`` is ``a.slice/a-b.slice``); an empty slice is
  ``system.slice`` and ``-`` the root slice, as in runc. strongbox creates
  that directory itself: it does not ask systemd for a scope, so the
  cgroup is where systemd would have put it.

The limits are the container's plus the VM's overhead: guest RAM (sized
from the memory limit) and ``runtime.sandbox_cgroup_memory_overhead`` MiB
for QEMU and the owner; the pids limit (none: 0) plus
``runtime.sandbox_cgroup_pids_overhead`` host tasks; the CPU quota, period,
shares and cpuset as given (vCPUs are what the container's processes run on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strongbox.errors import SandboxError

FIELD = "linux.cgroupsPath"


def _expand_slice(slice_name: str) -> list[str]:
    """systemd's slice nesting: ``a-b-c.slice`` lives in ``a.slice/a-b.slice/``."""
    if slice_name == "-":
        return []
    if not slice_name.endswith(".slice") or "/" in slice_name:
        raise SandboxError(f"{FIELD}: {slice_name!r} is not a systemd slice "
                           "(expected a name ending in .slice)")
    base = slice_name[:-len(".slice")]
    if not base or base.startswith("-") or base.endswith("-") or "--" in base:
        raise SandboxError(f"{FIELD}: {slice_name!r} is not a valid systemd slice name")
    parts = base.split("-")
    return ["-".join(parts[:i + 1]) + ".slice" for i in range(len(parts))]


def _is_systemd(value: str) -> bool:
    parts = value.split(":")
    return len(parts) == 3 and not value.startswith("/")


def relative_dir(value: str) -> str:
    """The cgroup directory ``value`` names, relative to each hierarchy's root."""
    if "\0" in value or "\n" in value:
        raise SandboxError(f"{FIELD}: {value!r} contains a NUL or newline")
    if _is_systemd(value):
        slice_name, prefix, name = value.split(":")
        if not name or "/" in name or "/" in prefix:
            raise SandboxError(f"{FIELD}: {value!r}: expected slice:prefix:name "
                               "with a unit name and no '/'")
        unit = name if name.endswith(".slice") else (f"{prefix}-{name}.scope" if prefix
                                                     else f"{name}.scope")
        parts = [*_expand_slice(slice_name or "system.slice"), unit]
    else:
        parts = [p for p in value.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise SandboxError(f"{FIELD}: {value!r} must not contain '..'")
    if not parts:
        raise SandboxError(f"{FIELD}: {value!r} names the root cgroup; a container needs "
                           "a cgroup of its own")
    return "/".join(parts)


@dataclass(frozen=True)
class HostLimits:
    """What the host cgroup enforces for the whole sandbox."""

    memory_bytes: int
    pids_max: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None

    def v1_files(self) -> dict[str, dict[str, str]]:
        """Per v1 controller, the files to write and their values (in order)."""
        files: dict[str, dict[str, str]] = {}
        if self.memory_bytes > 0:
            files["memory"] = {"memory.limit_in_bytes": str(self.memory_bytes)}
        if self.pids_max is not None:
            files["pids"] = {"pids.max": str(self.pids_max)}
        cpu: dict[str, str] = {}
        if self.cpu_period is not None:
            cpu["cpu.cfs_period_us"] = str(self.cpu_period)
        if self.cpu_quota is not None:
            cpu["cpu.cfs_quota_us"] = str(self.cpu_quota)
        if self.cpu_shares is not None:
            cpu["cpu.shares"] = str(self.cpu_shares)
        if cpu:
            files["cpu"] = cpu
        return files

    def v2_files(self) -> dict[str, str]:
        """The cgroup v2 interface files to write and their values."""
        files = {"memory.max": str(self.memory_bytes)} if self.memory_bytes > 0 else {}
        if self.pids_max is not None:
            files["pids.max"] = str(self.pids_max)
        if self.cpu_quota is not None or self.cpu_period is not None:
            quota = "max" if self.cpu_quota is None or self.cpu_quota < 0 else str(self.cpu_quota)
            files["cpu.max"] = f"{quota} {self.cpu_period or 100000}"
        if self.cpu_shares is not None:
            files["cpu.weight"] = str(shares_to_weight(self.cpu_shares))
        return files

    def cpuset(self) -> dict[str, str]:
        files = {}
        if self.cpuset_cpus:
            files["cpuset.cpus"] = self.cpuset_cpus
        if self.cpuset_mems:
            files["cpuset.mems"] = self.cpuset_mems
        return files


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] to v2 cpu.weight [1, 10000], runc's conversion."""
    if shares <= 0:
        return 100
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def limits_for(spec: dict[str, Any], memory_mib: int, *, memory_overhead_mib: int,
               pids_overhead: int) -> HostLimits:
    """The host limits of a sandbox whose VM has ``memory_mib`` of RAM, for ``spec``
    (already validated: the fields have their types)."""
    resources = spec.get("linux", {}).get("resources") or {}
    cpu = resources.get("cpu") or {}
    pids = (resources.get("pids") or {}).get("limit")
    quota = cpu.get("quota")
    return HostLimits(
        memory_bytes=(memory_mib + memory_overhead_mib) * 1024 * 1024,
        # always a cap, as the jail's own cgroup has (which the host cgroup replaces)
        pids_max=(pids if isinstance(pids, int) and pids > 0 else 0) + pids_overhead,
        cpu_quota=quota if isinstance(quota, int) and quota > 0 else None,
        cpu_period=cpu.get("period") or None,
        cpu_shares=cpu.get("shares") or None,
        cpuset_cpus=cpu.get("cpus") or None,
        cpuset_mems=cpu.get("mems") or None,
    )
