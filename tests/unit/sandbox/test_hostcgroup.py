"""HostCgroup's file writes on v1 and v2 layouts, checked on a directory standing in for
cgroupfs (the real placement, on this host's hierarchies, is in
tests/integration/test_host_cgroups.py; a v2 host is not available there)."""

from __future__ import annotations

import ctypes
import json
import os
import threading
from pathlib import Path

import pytest

from strongbox.sandbox import hostcgroup
from strongbox.sandbox.cgroupspath import HostLimits
from strongbox.sandbox.hostcgroup import OVERHEAD, RECORD, Hierarchy, HostCgroup, recorded

LIMITS = HostLimits(memory_bytes=1 << 30, pids_max=242, cpu_quota=50000, cpu_period=100000,
                    cpu_shares=512, cpuset_cpus="0", cpuset_mems="0")


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every value HostCgroup writes, by path (files still get written)."""
    seen: dict[str, str] = {}
    real = hostcgroup._write

    def record(path: Path, value: str) -> None:
        seen[str(path)] = value
        real(path, value)

    monkeypatch.setattr(hostcgroup, "_write", record)
    return seen


def test_v1_writes_each_controllers_limits_in_its_own_hierarchy(
        tmp_path: Path, writes: dict[str, str]) -> None:
    cpuset, memory, cpu = tmp_path / "cpuset", tmp_path / "memory", tmp_path / "cpu,cpuacct"
    for level in (cpuset, cpuset / "docker", cpuset / "docker" / "c1"):  # as the kernel has
        level.mkdir(parents=True)
        (level / "cpuset.cpus").write_text("0-1\n" if level == cpuset else "")
        (level / "cpuset.mems").write_text("0\n" if level == cpuset else "")
    cgroup = HostCgroup("docker/c1", "sb1", with_emulator=False, limits=LIMITS, hierarchies=[
        Hierarchy(cpuset, 1, frozenset({"cpuset"})), Hierarchy(memory, 1, frozenset({"memory"})),
        Hierarchy(cpu, 1, frozenset({"cpu", "cpuacct"}))])
    cgroup.create()
    assert writes[f"{cpuset}/docker/cpuset.cpus"] == "0-1"  # inherited level by level
    assert writes[f"{cpuset}/docker/c1/cpuset.cpus"] == "0"  # then the spec's
    assert writes[f"{memory}/docker/c1/memory.limit_in_bytes"] == str(1 << 30)
    assert writes[f"{cpu}/docker/c1/cpu.cfs_quota_us"] == "50000"
    assert writes[f"{cpu}/docker/c1/cpu.shares"] == "512"
    assert not any("pids" in p for p in writes)  # no pids hierarchy here: nothing written


def test_v2_enables_controllers_down_the_path_and_writes_v2_files(
        tmp_path: Path, writes: dict[str, str]) -> None:
    root = tmp_path / "unified"
    for level in (root, root / "kubepods"):
        level.mkdir(parents=True)
        (level / "cgroup.subtree_control").write_text("memory\n" if level == root else "")
    (root / "kubepods" / "pod1").mkdir()
    (root / "kubepods" / "pod1" / "cgroup.subtree_control").write_text("")
    cgroup = HostCgroup("kubepods/pod1/c1", "sb2", with_emulator=False, limits=LIMITS,
                        hierarchies=[Hierarchy(root, 2, frozenset({"cpu", "memory", "pids"}))])
    cgroup.create()
    assert writes[f"{root}/cgroup.subtree_control"] == "+cpu +pids"  # memory was on
    assert writes[f"{root}/kubepods/pod1/cgroup.subtree_control"] == "+cpu +memory +pids"
    leaf = root / "kubepods" / "pod1" / "c1"
    assert writes[f"{leaf}/memory.max"] == str(1 << 30)
    assert writes[f"{leaf}/pids.max"] == "242"
    assert writes[f"{leaf}/cpu.max"] == "50000 100000"
    assert writes[f"{leaf}/cpu.weight"] == str(1 + (510 * 9999) // 262142)
    assert f"{leaf}/cpuset.cpus" not in writes  # the root offers no cpuset controller
    # v2 cannot split a process's threads: no overhead cgroup
    cgroup.settle(0)
    assert not (root / OVERHEAD).exists()


def _named_thread(name: bytes) -> tuple[threading.Event, threading.Thread, list[int]]:
    stop, named, tids = threading.Event(), threading.Event(), []

    def run() -> None:
        tids.append(threading.get_native_id())
        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name))  # PR_SET_NAME
        named.set()
        stop.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    named.wait(5)
    return stop, thread, tids


def test_emulator_threads_leave_the_cpu_hierarchies_vcpus_stay(
        tmp_path: Path, writes: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, memory = tmp_path / "cpu", tmp_path / "memory"
    cgroup = HostCgroup("docker/c1", "sb3", with_emulator=False, hierarchies=[
        Hierarchy(cpu, 1, frozenset({"cpu"})), Hierarchy(memory, 1, frozenset({"memory"}))])
    moved: list[str] = []
    real = hostcgroup._write
    monkeypatch.setattr(hostcgroup, "_write", lambda p, v: (moved.append(v) if p.name == "tasks"
                                                           else real(p, v)))
    stop, thread, (vcpu,) = _named_thread(b"CPU 0/TCG")
    try:
        cgroup.settle(os.getpid())  # this process stands in for QEMU
    finally:
        stop.set()
        thread.join()
    assert str(vcpu) not in moved and str(threading.get_native_id()) in moved
    assert (cpu / OVERHEAD / "sb3").is_dir() and not (memory / OVERHEAD).exists()
    with_emulator = HostCgroup("docker/c1", "sb4", with_emulator=True,
                               hierarchies=cgroup.hierarchies)
    with_emulator.settle(os.getpid())
    assert not (cpu / OVERHEAD / "sb4").exists()


def test_the_record_names_the_cgroup_for_a_dead_owners_cleanup(tmp_path: Path) -> None:
    HostCgroup("/libpod_parent/libpod-x".strip("/"), "sb5", with_emulator=False,
               hierarchies=[]).record(tmp_path)
    assert json.loads((tmp_path / RECORD).read_text())["path"] == "libpod_parent/libpod-x"
    found = recorded(tmp_path)
    assert found is not None and found.relative == "libpod_parent/libpod-x"
    assert found.sandbox_id == "sb5" and not found.with_emulator
    (tmp_path / RECORD).write_text('{"path": "../../etc", "sandbox": "x"}')  # never followed
    assert recorded(tmp_path) is None
    assert recorded(tmp_path / "missing") is None
