"""The resource rules check the container's cgroup limits: config-linux.md "Control groups".

The agent writes these limits into the guest's cgroup v2 hierarchy, and the host
also sizes the VM from them (sizing.py), so a malformed value must fail here rather
than produce a VM of the wrong size. Fields are checked against the Go types of the
spec; cgroup v1-only fields (kernel memory, swappiness, realtime CPU) are accepted
for compatibility and ignored by a cgroup v2 guest.
"""

from __future__ import annotations

from ._check import (
    INT64,
    UINT16,
    UINT32,
    UINT64,
    Node,
    expect_object,
    fail,
)
from .cpuset import count_cpu_list
from .names import DEVICE_ACCESS, DEVICE_CGROUP_TYPES

TYPE_CHECKING = False  # `typing` is too slow to import in the guest; checkers treat this as True
if TYPE_CHECKING:
    from ._check import IntKind

# Memory amounts are int64 bytes where -1 means unlimited; other negatives mean nothing.
MEMORY_BYTES: IntKind = (-1, (1 << 63) - 1, "a byte count or -1 (unlimited)")

_THROTTLE_KEYS = (
    "throttleReadBpsDevice",
    "throttleWriteBpsDevice",
    "throttleReadIOPSDevice",
    "throttleWriteIOPSDevice",
)


def check_resources(resources: Node) -> None:
    """config-linux.md "Control groups": every group is optional."""
    _check_device_rules(resources)
    memory = resources.object("memory")
    if memory is not None:
        _check_memory(memory)
    cpu = resources.object("cpu")
    if cpu is not None:
        _check_cpu(cpu)
    pids = resources.object("pids")
    if pids is not None:
        pids.integer("limit", INT64)
    block_io = resources.object("blockIO")
    if block_io is not None:
        _check_block_io(block_io)
    for page in resources.objects("hugepageLimits"):
        page.string("pageSize", required=True, nonempty=True)
        page.integer("limit", UINT64, required=True)
    network = resources.object("network")
    if network is not None:
        network.integer("classID", UINT32)
        for priority in network.objects("priorities"):
            priority.string("name", required=True)
            priority.integer("priority", UINT32, required=True)
    rdma = resources.object("rdma")
    if rdma is not None:
        for name, value in rdma.value.items():
            device = expect_object(value, f"{rdma.path}[{name!r}]")
            device.integer("hcaHandles", UINT32)
            device.integer("hcaObjects", UINT32)
    resources.string_map("unified")


def _check_device_rules(resources: Node) -> None:
    """config-linux.md "Device allowlist": allow REQUIRED; type a/b/c; access of r, w, m.

    A missing major or minor is the wildcard, so both stay optional.
    """
    for rule in resources.objects("devices"):
        rule.boolean("allow", required=True)
        rule.choice("type", DEVICE_CGROUP_TYPES)
        rule.integer("major", INT64)
        rule.integer("minor", INT64)
        access = rule.string("access")
        if access is not None and not set(access) <= set(DEVICE_ACCESS):
            fail(rule.at("access"), "a combination of r, w and m", access)


def _check_memory(memory: Node) -> None:
    """config-linux.md "Memory": amounts in bytes; limit also sizes the guest's RAM."""
    for key in ("limit", "reservation", "swap", "kernel", "kernelTCP"):
        memory.integer(key, MEMORY_BYTES)
    memory.integer("swappiness", UINT64)
    for key in ("disableOOMKiller", "useHierarchy", "checkBeforeUpdate"):
        memory.boolean(key)


def _check_cpu(cpu: Node) -> None:
    """config-linux.md "CPU": CFS shares/quota/period, and the cpuset lists.

    quota and period also size the guest's vCPUs, and the cpus list its vCPU count,
    so their syntax is checked with the same parser the sizing uses.
    """
    cpu.integer("shares", UINT64)
    cpu.integer("quota", INT64)
    cpu.integer("burst", UINT64)
    cpu.integer("period", UINT64)
    cpu.integer("realtimeRuntime", INT64)
    cpu.integer("realtimePeriod", UINT64)
    cpu.integer("idle", INT64)
    for key in ("cpus", "mems"):
        text = cpu.string(key)
        if text:
            count_cpu_list(text, cpu.at(key))


def _check_block_io(block_io: Node) -> None:
    """config-linux.md "Block IO": weights are uint16, devices name major:minor."""
    block_io.integer("weight", UINT16)
    block_io.integer("leafWeight", UINT16)
    for device in block_io.objects("weightDevice"):
        device.integer("major", INT64, required=True)
        device.integer("minor", INT64, required=True)
        device.integer("weight", UINT16)
        device.integer("leafWeight", UINT16)
    for key in _THROTTLE_KEYS:
        for device in block_io.objects(key):
            device.integer("major", INT64, required=True)
            device.integer("minor", INT64, required=True)
            device.integer("rate", UINT64, required=True)
