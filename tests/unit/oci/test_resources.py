"""config-linux.md "Control groups": the limits the guest applies and the VM is sized from."""

from __future__ import annotations

from typing import Any

import pytest

from strongbox.oci.spec import validate
from tests.unit.oci.specs import DELETE, check_rejection, edited, minimal_spec

R = "linux.resources"


@pytest.mark.parametrize("cpus", ["", "0", "0-3,5", "7-8,0-3", "0-0"])
def test_valid_cpu_lists(cpus: str) -> None:
    validate(edited(minimal_spec(), f"{R}.cpu.cpus", cpus))


CASES = [
    (R, [], R, "an object"),
    (f"{R}.devices", {}, f"{R}.devices", "an array of objects"),
    (f"{R}.devices[0].allow", DELETE, f"{R}.devices[0].allow", "a boolean"),
    (f"{R}.devices[0].allow", "false", f"{R}.devices[0].allow", "a boolean"),
    (f"{R}.devices[1].type", "u", f"{R}.devices[1].type", "one of a, b, c"),
    (f"{R}.devices[1].major", 1.5, f"{R}.devices[1].major", "an int64"),
    (f"{R}.devices[1].access", "rwx", f"{R}.devices[1].access", "a combination of r, w and m"),
    (f"{R}.memory", 512, f"{R}.memory", "an object"),
    (f"{R}.memory.limit", -2, f"{R}.memory.limit", "a byte count or -1"),
    (f"{R}.memory.limit", "1g", f"{R}.memory.limit", "a byte count or -1"),
    (f"{R}.memory.reservation", 2**63, f"{R}.memory.reservation", "a byte count or -1"),
    (f"{R}.memory.swap", 1.0, f"{R}.memory.swap", "a byte count or -1"),
    (f"{R}.memory.kernel", "x", f"{R}.memory.kernel", "a byte count or -1"),
    (f"{R}.memory.swappiness", -1, f"{R}.memory.swappiness", "a uint64"),
    (f"{R}.memory.disableOOMKiller", 1, f"{R}.memory.disableOOMKiller", "a boolean"),
    (f"{R}.cpu.shares", -1, f"{R}.cpu.shares", "a uint64"),
    (f"{R}.cpu.quota", 1.5, f"{R}.cpu.quota", "an int64"),
    (f"{R}.cpu.quota", 2**63, f"{R}.cpu.quota", "an int64"),
    (f"{R}.cpu.period", -1, f"{R}.cpu.period", "a uint64"),
    (f"{R}.cpu.burst", "0", f"{R}.cpu.burst", "a uint64"),
    (f"{R}.cpu.realtimeRuntime", "0", f"{R}.cpu.realtimeRuntime", "an int64"),
    (f"{R}.cpu.cpus", 3, f"{R}.cpu.cpus", "a string"),
    (f"{R}.cpu.cpus", "0-", f"{R}.cpu.cpus", "a cpuset list like '0-3,5'"),
    (f"{R}.cpu.cpus", "3-1", f"{R}.cpu.cpus", "ascending ranges"),
    (f"{R}.cpu.cpus", "all", f"{R}.cpu.cpus", "a cpuset list like '0-3,5'"),
    (f"{R}.cpu.mems", "0,,1", f"{R}.cpu.mems", "a cpuset list like '0-3,5'"),
    (f"{R}.pids", 10, f"{R}.pids", "an object"),
    (f"{R}.pids.limit", "max", f"{R}.pids.limit", "an int64"),
    (f"{R}.blockIO.weight", 70000, f"{R}.blockIO.weight", "a uint16"),
    (f"{R}.blockIO.weightDevice[0].major", DELETE, f"{R}.blockIO.weightDevice[0].major",
     "an int64"),
    (f"{R}.blockIO.throttleReadBpsDevice[0].rate", DELETE,
     f"{R}.blockIO.throttleReadBpsDevice[0].rate", "a uint64"),
    (f"{R}.hugepageLimits[0].pageSize", DELETE, f"{R}.hugepageLimits[0].pageSize",
     "a non-empty string"),
    (f"{R}.hugepageLimits[0].limit", -1, f"{R}.hugepageLimits[0].limit", "a uint64"),
    (f"{R}.network.classID", -1, f"{R}.network.classID", "a uint32"),
    (f"{R}.network.priorities[0].name", DELETE, f"{R}.network.priorities[0].name", "a string"),
    (f"{R}.rdma", {"mlx5_1": 3}, f"{R}.rdma['mlx5_1']", "an object"),
    (f"{R}.rdma", {"mlx5_1": {"hcaHandles": -1}}, f"{R}.rdma['mlx5_1'].hcaHandles", "a uint32"),
    (f"{R}.unified", {"memory.max": 5}, f"{R}.unified['memory.max']", "a string"),
]


@pytest.mark.parametrize(("edit", "value", "path", "expected"), CASES)
def test_resources_rule(edit: str, value: Any, path: str, expected: str) -> None:
    check_rejection(edit, value, path, expected)
