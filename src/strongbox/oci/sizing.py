"""Sizing turns a container's resource limits into the size of the microVM that runs it.

Every container gets its own VM, so the VM is the container's real resource
boundary on the host, and it should be just big enough for what the spec allows:

* Memory. The container's cgroup memory limit is applied inside the guest too, so the
  workload can never use more than the limit; the VM needs the limit plus a margin
  that holds the guest kernel, the agent and the page cache the workload's I/O goes
  through. Without a limit there is nothing to derive from, and the operator's
  default applies.
* vCPUs. The CFS quota (config-linux.md "CPU" quota/period) says how many CPUs' worth
  of time the container may use, and the cpuset (cpus) how many CPUs it may run on.
  The VM needs enough vCPUs for either to be reachable, hence the larger of the two;
  the cgroup limits inside the guest still enforce the time quota. The operator's
  maximum caps both, since a vCPU costs a host thread.

The cpuset names host CPU numbers; the guest's CPUs are numbered from 0, so only the
count carries over. Whoever applies linux.resources.cpu.cpus inside the guest must
translate it, not write the host numbers.

Standard library only, like the rest of strongbox.oci; it is called on the host.
"""

from __future__ import annotations

from .spec import cpu_quota_vcpus, cpuset_count, memory_limit

TYPE_CHECKING = False  # `typing` is too slow to import in the guest; checkers treat this as True
if TYPE_CHECKING:
    from typing import Any

MIB = 1 << 20


def vm_size(
    spec: dict[str, Any],
    *,
    default_memory_mib: int,
    default_vcpus: int,
    memory_margin_mib: int,
    max_vcpus: int,
    min_memory_mib: int = 128,
) -> tuple[int, int]:
    """Return ``(memory_mib, vcpus)`` for the VM of a validated spec.

    Memory: ceil(limit in MiB) + ``memory_margin_mib``, at least ``min_memory_mib``
    (a tiny limit still needs a bootable guest); ``default_memory_mib`` when the
    spec sets no limit (absent, 0 or -1).

    vCPUs: the larger of the quota-derived count and the cpuset count, whichever the
    spec sets (each at least 1); ``default_vcpus`` when it sets neither; never more
    than ``max_vcpus`` and never fewer than 1.
    """
    limit = memory_limit(spec)
    if limit is None:
        memory_mib = default_memory_mib
    else:
        memory_mib = max(-(-limit // MIB) + memory_margin_mib, min_memory_mib)

    counts = [count for count in (cpu_quota_vcpus(spec), cpuset_count(spec)) if count is not None]
    vcpus = max(*counts, 1) if counts else default_vcpus
    return memory_mib, max(1, min(vcpus, max_vcpus))
