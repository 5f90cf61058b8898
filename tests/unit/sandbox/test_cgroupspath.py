"""linux.cgroupsPath forms and the host limits (pure logic; the real placement is in
tests/integration/test_host_cgroups.py)."""

from __future__ import annotations

import pytest

from strongbox.errors import SandboxError
from strongbox.sandbox.cgroupspath import limits_for, relative_dir, shares_to_weight
from strongbox.sandbox.hostcgroup import host_hierarchies


@pytest.mark.parametrize(("value", "expected"), [
    ("/docker/abc", "docker/abc"),
    ("/libpod_parent/libpod-abc", "libpod_parent/libpod-abc"),
    ("/kubepods/burstable/pod1/abc", "kubepods/burstable/pod1/abc"),
    ("relative/x", "relative/x"),
    ("//a/./b/", "a/b"),
    ("machine.slice:libpod:abc", "machine.slice/libpod-abc.scope"),
    ("system.slice:docker:abc", "system.slice/docker-abc.scope"),
    ("kubepods-burstable-pod1.slice:cri-containerd:abc",
     "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/"
     "cri-containerd-abc.scope"),
    (":runc:abc", "system.slice/runc-abc.scope"),
    ("-:runc:abc", "runc-abc.scope"),
    ("machine.slice:x:inner.slice", "machine.slice/inner.slice"),
])
def test_path_forms(value: str, expected: str) -> None:
    assert relative_dir(value) == expected


@pytest.mark.parametrize(("value", "why"), [
    ("/", "root cgroup"),
    ("/a/../b", ".."),
    ("nope:x:y", "not a systemd slice"),
    ("a--b.slice:x:y", "not a valid systemd slice"),
    ("machine.slice:x:", "unit name"),
    ("/a\0b", "NUL"),
])
def test_bad_paths_name_the_field(value: str, why: str) -> None:
    with pytest.raises(SandboxError, match=why) as info:
        relative_dir(value)
    assert str(info.value).startswith("linux.cgroupsPath: ")


def test_limits_are_the_containers_plus_the_overhead() -> None:
    spec = {"linux": {"resources": {"pids": {"limit": 10},
                                    "cpu": {"quota": 20000, "period": 100000, "shares": 1024,
                                            "cpus": "0", "mems": "0"}}}}
    limits = limits_for(spec, 256, memory_overhead_mib=448, pids_overhead=192)
    assert limits.memory_bytes == (256 + 448) << 20
    assert limits.v1_files() == {
        "memory": {"memory.limit_in_bytes": str((256 + 448) << 20)},
        "pids": {"pids.max": "202"},
        "cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "20000",
                "cpu.shares": "1024"}}
    assert limits.v2_files() == {"memory.max": str((256 + 448) << 20), "pids.max": "202",
                                 "cpu.max": "20000 100000", "cpu.weight": "39"}
    assert limits.cpuset() == {"cpuset.cpus": "0", "cpuset.mems": "0"}


def test_no_limits_in_the_spec_still_cap_memory_and_tasks() -> None:
    limits = limits_for({}, 512, memory_overhead_mib=448, pids_overhead=192)
    assert limits.v1_files() == {"memory": {"memory.limit_in_bytes": str(960 << 20)},
                                 "pids": {"pids.max": "192"}}
    assert limits.cpu_quota is None and not limits.cpuset()


def test_shares_to_weight_matches_runc() -> None:
    assert shares_to_weight(2) == 1
    assert shares_to_weight(262144) == 10000
    assert shares_to_weight(1024) == 39


MOUNTINFO_V1 = """\
25 30 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
27 25 0:24 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
28 25 0:25 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
29 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
30 25 0:24 / /mnt/memory-again rw - cgroup cgroup rw,memory
"""


def test_hierarchies_of_a_hybrid_host_are_its_v1_ones_each_once() -> None:
    found = host_hierarchies(MOUNTINFO_V1)
    assert [(str(h.root), h.version, sorted(h.controllers)) for h in found] == [
        ("/sys/fs/cgroup/cpu,cpuacct", 1, ["cpu", "cpuacct"]),
        ("/sys/fs/cgroup/memory", 1, ["memory"]),
        ("/sys/fs/cgroup/systemd", 1, ["name=systemd"]),
    ]
