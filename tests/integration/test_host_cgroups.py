"""The host cgroup a spec names holds its sandbox: QEMU and the monitor (issue 12).

What Docker, podman and the kubelet read back (``/proc/<pid>/cgroup`` of the
reported pid, the cgroup's usage files) and what the host enforces (its
limits) must be the VM's. Checked on this host's real cgroup hierarchies
(v1 here, v2 elsewhere), with both path forms, and after a kill -9 of the
monitor.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongbox.sandbox.hostcgroup import OVERHEAD, Hierarchy, host_hierarchies
from tests.framework import cli
from tests.framework.bundle import make_bundle
from tests.framework.procs import qemu_pids, wait_until

pytestmark = [pytest.mark.vm]
MEMORY_LIMIT = 200 * 1024 * 1024


def _line(pid: int | str, hierarchy: Hierarchy) -> str:
    """The cgroup ``pid`` is in within ``hierarchy`` (from /proc/PID/cgroup)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if hierarchy.version == 2 and not controllers:
            return path
        if hierarchy.version == 1 and set(controllers.split(",")) == set(hierarchy.controllers):
            return path
    raise AssertionError(f"{pid} has no cgroup in {hierarchy.root}")


def _by(controller: str) -> Hierarchy:
    for h in host_hierarchies():
        if controller in h.controllers:
            return h
    pytest.skip(f"this host has no {controller} hierarchy")


def _limit(h: Hierarchy, relative: str, v1: str, v2: str) -> str:
    return (h.root / relative / (v1 if h.version == 1 else v2)).read_text().strip()


class Host:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.root, self.tmp = root, tmp
        self.parent = f"sbxtest{uuid.uuid4().hex[:8]}"

    def run_detached(self, cid: str, cgroups_path: str) -> int:
        bundle = make_bundle(self.tmp / cid, ["sleep", "600"], linux__cgroupsPath=cgroups_path,
                             linux__resources={"memory": {"limit": MEMORY_LIMIT},
                                               "pids": {"limit": 50},
                                               "cpu": {"quota": 50000, "period": 100000}})
        pid_file = self.tmp / f"{cid}.pid"
        argv = cli.strongbox_argv("--root", self.root, "run", "--detach", "--bundle", bundle,
                                  "--pid-file", pid_file, cid)
        cli.run_to_files(argv, self.tmp / f"{cid}.out", self.tmp / f"{cid}.err").check()
        return int(pid_file.read_text())

    def delete(self, cid: str) -> None:
        cli.run("--root", self.root, "delete", "--force", cid).check()

    def remove_parents(self) -> None:
        for h in host_hierarchies():
            for directory in sorted((h.root / self.parent).glob("**/"), reverse=True):
                directory.rmdir()


@pytest.fixture
def host(no_leaks: Path, tmp_path: Path, guest_assets: dict[str, Path]) -> Iterator[Host]:
    h = Host(no_leaks, tmp_path)
    yield h
    for entry in (no_leaks / "containers").glob("*"):
        cli.run("--root", no_leaks, "delete", "--force", entry.name)
    h.remove_parents()


@pytest.mark.usefixtures("factory_mode")
def test_qemu_and_the_monitor_live_in_the_spec_cgroup_with_its_limits(host: Host) -> None:
    relative = f"{host.parent}/c1"
    monitor = host.run_detached("hc1", f"/{relative}")
    (qemu,) = qemu_pids(str(host.root))
    memory, pids = _by("memory"), _by("pids")
    for h in (memory, pids):
        assert _line(monitor, h) == f"/{relative}"
        assert _line(qemu, h) == f"/{relative}"
    # the guest's RAM (sized from the limit) plus the configured overhead; pids + overhead
    limit = int(_limit(memory, relative, "memory.limit_in_bytes", "memory.max"))
    assert MEMORY_LIMIT < limit <= MEMORY_LIMIT + 1024 * 1024 * 1024
    assert _limit(pids, relative, "pids.max", "pids.max") == str(50 + 192)
    usage = int(_limit(memory, relative, "memory.usage_in_bytes", "memory.current"))
    assert usage > 32 * 1024 * 1024  # the VM's RAM really is counted here
    cpu = _by("cpu")
    if cpu.version == 1:
        assert _limit(cpu, relative, "cpu.cfs_quota_us", "cpu.max") == "50000"
        # sandbox_cgroup_with_emulator = false: only vCPU threads count against the CPU
        tasks = (cpu.root / relative / "tasks").read_text().split()
        names = {Path(f"/proc/{qemu}/task/{t}/comm").read_text().strip()
                 for t in tasks if os.path.exists(f"/proc/{qemu}/task/{t}")}
        assert names and all(n.startswith("CPU ") for n in names), names
        assert _line(qemu, cpu) == f"/{OVERHEAD}/hc1"
        assert _line(monitor, cpu) == f"/{relative}"
    host.delete("hc1")
    for h in host_hierarchies():
        assert not (h.root / relative).exists()
        assert not (h.root / OVERHEAD / "hc1").exists()


def test_systemd_form_and_kill_9_of_the_monitor_then_delete(host: Host) -> None:
    slice_name = host.parent = f"{host.parent}.slice"  # no '-': a top-level slice
    monitor = host.run_detached("hc2", f"{slice_name}:sbx:hc2")
    relative = f"{slice_name}/sbx-hc2.scope"
    memory = _by("memory")
    assert _line(monitor, memory) == f"/{relative}"
    os.kill(monitor, signal.SIGKILL)
    assert wait_until(lambda: not qemu_pids(str(host.root)), timeout=10)
    host.delete("hc2")
    for h in host_hierarchies():
        assert not (h.root / relative).exists()
        assert not (h.root / OVERHEAD / "hc2").exists()


def test_a_bad_cgroups_path_is_one_line_and_leaves_nothing(host: Host) -> None:
    bundle = make_bundle(host.tmp / "bad", ["true"], linux__cgroupsPath="/a/../../etc")
    result = cli.run("--root", host.root, "run", "--bundle", bundle, "bad")
    cli.assert_one_line_error(result, "linux.cgroupsPath", "..")
    assert not list((host.root / "containers").glob("*"))
