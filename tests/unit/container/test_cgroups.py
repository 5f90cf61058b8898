"""Cgroup v2 logic against a fake hierarchy: directories of plain files."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from strongbox.container.cgroups import Cgroup, cpu_weight, resource_writes, swap_max
from strongbox.container.errors import ContainerError

ALL = "cpuset cpu io memory hugetlb pids rdma misc"


def fake_cgroup(path: Path, controllers: str = ALL, **files: str) -> Path:
    """A directory that looks like a cgroup: interface files with contents."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "cgroup.controllers").write_text(controllers + "\n")
    (path / "cgroup.subtree_control").write_text("")
    (path / "cgroup.procs").write_text("")
    for name, text in files.items():
        (path / name.replace("_", ".", 1)).write_text(text)
    return path


# -- conversions -------------------------------------------------------------

@pytest.mark.parametrize(("shares", "weight"), [
    (2, 1), (1024, 39), (262144, 10000), (1, 1), (1_000_000, 10000)])
def test_cpu_weight(shares: int, weight: int) -> None:
    assert cpu_weight(shares) == weight


def test_swap_conversion() -> None:
    assert swap_max(-1, 100) == "max"
    assert swap_max(0, -1) == "max"  # unlimited memory, swap unset: unlimited swap
    assert swap_max(0, 100) is None
    assert swap_max(300, 100) == "200"
    assert swap_max(100, 100) == "0"
    with pytest.raises(ContainerError, match=r"below memory\.limit"):
        swap_max(50, 100)
    with pytest.raises(ContainerError, match=r"needs a memory\.limit"):
        swap_max(300, None)


def test_resource_writes() -> None:
    writes = resource_writes({
        "memory": {"limit": 268435456, "reservation": 134217728, "swap": 536870912},
        "pids": {"limit": 64},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
        "unified": {"memory.high": "200M"},
    })
    assert writes == [
        ("memory.max", "268435456"), ("memory.low", "134217728"),
        ("memory.swap.max", "268435456"), ("pids.max", "64"), ("cpu.weight", "39"),
        ("cpu.max", "50000 100000"), ("cpuset.cpus", "0-1"), ("cpuset.mems", "0"),
        ("memory.high", "200M"),
    ]


def test_unlimited_values() -> None:
    writes = resource_writes({"memory": {"limit": -1}, "pids": {"limit": -1},
                              "cpu": {"quota": -1, "period": 50000}})
    assert writes == [("memory.max", "max"), ("memory.swap.max", "max"), ("pids.max", "max"),
                      ("cpu.max", "max 50000")]
    assert resource_writes({"pids": {"limit": 0}}) == [("pids.max", "max")]
    assert resource_writes({}) == []


def test_unified_names_cannot_leave_the_directory() -> None:
    with pytest.raises(ContainerError, match="invalid unified cgroup file name"):
        resource_writes({"unified": {"../../cgroup.procs": "1"}})


# -- the directory -----------------------------------------------------------

def test_create_enables_controllers_on_the_way_down(tmp_path: Path) -> None:
    root = fake_cgroup(tmp_path / "cg", "cpuset cpu io memory pids")
    fake_cgroup(root / "strongbox", "cpu memory pids")
    cg = Cgroup(str(root / "strongbox" / "c1"), root=str(root))
    cg.create()
    assert (root / "strongbox" / "c1").is_dir()
    # A real cgroupfs accumulates "+x" writes; the fake file keeps the last one.
    assert (root / "cgroup.subtree_control").read_text() == "+pids"
    assert (root / "strongbox" / "cgroup.subtree_control").read_text() == "+pids"
    cg.create()  # idempotent


def test_create_enables_each_offered_controller(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = fake_cgroup(tmp_path / "cg", "cpu memory io")
    written: list[tuple[str, str]] = []
    monkeypatch.setattr(Cgroup, "_write",
                        lambda self, name, value, directory=None: written.append((name, value)))
    Cgroup(str(root / "a"), root=str(root)).create()
    assert written == [("cgroup.subtree_control", "+cpu"), ("cgroup.subtree_control", "+memory")]


def test_create_refuses_paths_outside_the_root(tmp_path: Path) -> None:
    with pytest.raises(ContainerError, match="is not below"):
        Cgroup("/elsewhere/x", root=str(tmp_path)).create()


def test_relative_path_is_under_the_root() -> None:
    assert Cgroup("strongbox/c1").path == "/sys/fs/cgroup/strongbox/c1"


def test_apply_writes_files(tmp_path: Path) -> None:
    cg_dir = fake_cgroup(tmp_path / "c", "cpu memory pids", memory_max="max\n",
                         pids_max="max\n", cpu_weight="100\n")
    Cgroup(str(cg_dir), root=str(tmp_path)).apply({"memory": {"limit": 1 << 20},
                                                   "pids": {"limit": 10},
                                                   "cpu": {"shares": 2}})
    assert (cg_dir / "memory.max").read_text() == "1048576"
    assert (cg_dir / "pids.max").read_text() == "10"
    assert (cg_dir / "cpu.weight").read_text() == "1"


def test_apply_skips_files_of_absent_controllers_only(tmp_path: Path) -> None:
    cg_dir = fake_cgroup(tmp_path / "c", "memory pids", memory_max="max\n")
    cg = Cgroup(str(cg_dir), root=str(tmp_path))
    cg.apply({"memory": {"limit": 4096, "swap": -1}, "cpu": {"shares": 512, "cpus": "0"}})
    assert (cg_dir / "memory.max").read_text() == "4096"
    assert not (cg_dir / "cpu.weight").exists()
    with pytest.raises(ContainerError) as info:  # pids is there, so pids.max must be
        cg.apply({"pids": {"limit": 5}})
    assert info.value.stage == "cgroup" and info.value.errno == errno.ENOENT
    assert "pids.max" in str(info.value)


def _proc_tree(tmp_path: Path) -> Cgroup:
    top = fake_cgroup(tmp_path / "c", cgroup_procs="10\n11\n")
    fake_cgroup(top / "sub", cgroup_procs="12\n")
    return Cgroup(str(top), root=str(tmp_path))


def test_procs_is_recursive(tmp_path: Path) -> None:
    assert sorted(_proc_tree(tmp_path).procs()) == [10, 11, 12]


def test_kill_uses_cgroup_kill_when_present(tmp_path: Path) -> None:
    cg = _proc_tree(tmp_path)
    (Path(cg.path) / "cgroup.kill").write_text("0")
    cg.kill()
    assert (Path(cg.path) / "cgroup.kill").read_text() == "1"


def test_kill_falls_back_to_each_process(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    killed: list[tuple[int, int]] = []

    def fake_kill(pid: int, sig: int) -> None:
        killed.append((pid, sig))
        if pid == 11:
            raise ProcessLookupError

    monkeypatch.setattr(os, "kill", fake_kill)
    _proc_tree(tmp_path).kill()
    assert sorted(killed) == [(10, 9), (11, 9), (12, 9)]


def test_freeze_waits_for_the_kernel(tmp_path: Path) -> None:
    cg_dir = fake_cgroup(tmp_path / "c", cgroup_freeze="0\n",
                         cgroup_events="populated 1\nfrozen 1\n")
    cg = Cgroup(str(cg_dir), root=str(tmp_path))
    cg.freeze(timeout=1)
    assert (cg_dir / "cgroup.freeze").read_text() == "1"
    with pytest.raises(ContainerError, match=r"thaw .*: timed out after 0\.05s"):
        cg.thaw(timeout=0.05)  # the fake kernel never reports "frozen 0"
    assert (cg_dir / "cgroup.freeze").read_text() == "0"


def test_destroy_kills_waits_and_removes_depth_first(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    top = fake_cgroup(tmp_path / "c", cgroup_kill="0")
    fake_cgroup(top / "sub")
    removed: list[str] = []
    monkeypatch.setattr(os, "rmdir", removed.append)
    Cgroup(str(top), root=str(tmp_path)).destroy()
    assert removed == [str(top / "sub"), str(top)]
    assert (top / "cgroup.kill").read_text() == "1"
    Cgroup(str(tmp_path / "gone"), root=str(tmp_path)).destroy()  # already gone: fine


def test_destroy_gives_up_when_processes_survive(tmp_path: Path) -> None:
    cg = _proc_tree(tmp_path)
    (Path(cg.path) / "cgroup.kill").write_text("")
    with pytest.raises(ContainerError, match="processes survive"):
        cg.destroy(timeout=0.05)


def test_stats(tmp_path: Path) -> None:
    cg_dir = fake_cgroup(
        tmp_path / "c",
        memory_current="1048576\n", memory_max="max\n",
        memory_stat="anon 4096\nfile 8192\nunknown_key 1\npgfault 7\n",
        memory_events="low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        pids_current="3\n", pids_max="64\n",
        cpu_stat="usage_usec 100\nuser_usec 60\nsystem_usec 40\nnr_periods 0\n"
                 "nr_throttled 0\nthrottled_usec 0\n",
    )
    stats: dict[str, Any] = Cgroup(str(cg_dir), root=str(tmp_path)).stats()
    assert stats == {
        "memory": {"current": 1048576, "max": None, "oom": 1, "oom_kill": 1,
                   "stat": {"anon": 4096, "file": 8192, "pgfault": 7}},
        "pids": {"current": 3, "max": 64},
        "cpu": {"usage_usec": 100, "user_usec": 60, "system_usec": 40, "nr_periods": 0,
                "nr_throttled": 0, "throttled_usec": 0},
    }
    assert Cgroup(str(fake_cgroup(tmp_path / "empty")), root=str(tmp_path)).stats() == {}
