"""Cgroup v1/v2 detection, creation, limits and removal, against fake hierarchies."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongbox.cgroupfs import parse_mountinfo
from strongbox.errors import HypervisorError
from strongbox.hypervisor.jailer.cgroups import (
    Cgroup,
    Hierarchies,
    detect,
    memory_limit_bytes,
)


def _line(mount_point: Path | str, fstype: str, options: str) -> str:
    return (f"35 31 0:32 / {mount_point} rw,nosuid,nodev,noexec,relatime shared:9 - "
            f"{fstype} {fstype} {options}")


def _v2(root: Path, controllers: str) -> Path:
    """A cgroup2 root with the files the kernel would make (strongbox/ made already)."""
    (root / "strongbox").mkdir(parents=True)
    (root / "cgroup.controllers").write_text(controllers + "\n")
    for directory in (root, root / "strongbox"):
        (directory / "cgroup.subtree_control").write_text("\n")
    return root


def _hybrid(tmp_path: Path) -> str:
    """This host's shape: v1 per controller, an empty v2 at unified/."""
    base = tmp_path / "sys/fs/cgroup"
    _v2(base / "unified", "")
    for name in ("memory", "pids", "cpu"):
        (base / name).mkdir(parents=True)
    return "\n".join([
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
        _line(base / "cpu", "cgroup", "rw,cpu"),
        _line(base / "memory", "cgroup", "rw,memory"),
        _line(base / "pids", "cgroup", "rw,pids"),
        _line(base / "unified", "cgroup2", "rw"),
    ])


def test_parse_mountinfo_unescapes_and_keeps_cgroups_only() -> None:
    text = "\n".join([
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
        _line("/sys/fs/cgroup/with\\040space", "cgroup2", "rw,nsdelegate"),
        _line("/sys/fs/cgroup/memory", "cgroup", "rw,memory"),
        "garbage",
    ])
    mounts = parse_mountinfo(text)
    assert [(str(m.path), m.version) for m in mounts] == [
        ("/sys/fs/cgroup/with space", 2), ("/sys/fs/cgroup/memory", 1)]
    assert "memory" in mounts[1].options


def test_detect_pure_v2(tmp_path: Path) -> None:
    root = _v2(tmp_path / "cg", "cpuset cpu io memory hugetlb pids rdma misc")
    found = detect(_line(root, "cgroup2", "rw,nsdelegate,memory_recursiveprot"))
    assert found == Hierarchies(2, root, root)
    assert found.roots() == [root]


def test_detect_hybrid_uses_v1(tmp_path: Path) -> None:
    base = tmp_path / "sys/fs/cgroup"
    found = detect(_hybrid(tmp_path))
    assert found == Hierarchies(1, base / "memory", base / "pids")
    assert found.roots() == [base / "memory", base / "pids"]


def test_detect_prefers_v2_when_it_has_both(tmp_path: Path) -> None:
    text = _hybrid(tmp_path)
    unified = tmp_path / "sys/fs/cgroup/unified"
    (unified / "cgroup.controllers").write_text("memory pids\n")
    assert detect(text).version == 2


def test_detect_v2_without_pids_and_no_v1(tmp_path: Path) -> None:
    root = _v2(tmp_path / "cg", "cpu memory")
    with pytest.raises(HypervisorError, match="memory and pids"):
        detect(_line(root, "cgroup2", "rw"))


def test_v1_create_join_remove(tmp_path: Path) -> None:
    h = detect(_hybrid(tmp_path))
    cgroup = Cgroup.create("box", memory_bytes=memory_limit_bytes(256, 384), pids_max=128,
                           hierarchies=h)
    memory, pids = h.memory / "strongbox/box", h.pids / "strongbox/box"
    assert cgroup.paths == [memory, pids]
    assert (memory / "memory.limit_in_bytes").read_text() == str(640 * 1024 * 1024)
    assert (pids / "pids.max").read_text() == "128"
    cgroup.join(4242)
    assert (memory / "cgroup.procs").read_text() == "4242"
    assert (pids / "cgroup.procs").read_text() == "4242"
    # A real cgroup directory holds only kernel files; the fake one must be emptied first.
    for path in cgroup.paths:
        for f in path.iterdir():
            f.unlink()
    assert cgroup.remove()
    assert not memory.exists() and not pids.exists()
    assert (h.memory / "strongbox").is_dir()  # the shared parent stays
    assert cgroup.remove()  # idempotent


def test_v2_enables_controllers_and_writes_limits(tmp_path: Path) -> None:
    root = _v2(tmp_path / "cg", "memory pids")
    cgroup = Cgroup.create("box", memory_bytes=123 * 1024 * 1024, pids_max=64,
                           hierarchies=Hierarchies(2, root, root))
    assert cgroup.paths == [root / "strongbox/box"]
    assert (root / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (root / "strongbox/cgroup.subtree_control").read_text() == "+memory +pids"
    assert (root / "strongbox/box/memory.max").read_text() == str(123 * 1024 * 1024)
    assert (root / "strongbox/box/pids.max").read_text() == "64"


def test_v2_leaves_enabled_controllers_alone(tmp_path: Path) -> None:
    root = _v2(tmp_path / "cg", "memory pids")
    (root / "cgroup.subtree_control").write_text("cpu memory pids\n")
    Cgroup.create("box", memory_bytes=1, pids_max=16, hierarchies=Hierarchies(2, root, root))
    assert (root / "cgroup.subtree_control").read_text() == "cpu memory pids\n"


def test_populated_cgroup_of_the_same_name_is_refused(tmp_path: Path) -> None:
    root = _v2(tmp_path / "cg", "memory pids")
    busy = root / "strongbox/box"
    busy.mkdir()
    (busy / "cgroup.procs").write_text("77\n")
    with pytest.raises(HypervisorError, match="in use by another VM"):
        Cgroup.create("box", memory_bytes=1, pids_max=16,
                      hierarchies=Hierarchies(2, root, root))
    assert busy.is_dir()


def test_unusable_names(tmp_path: Path) -> None:
    h = Hierarchies(2, tmp_path, tmp_path)
    for name in ("", ".", "..", "a/b"):
        with pytest.raises(HypervisorError, match="cannot name a cgroup"):
            Cgroup(h, name)


def test_creation_failure_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "not-a-cgroup-fs"
    with pytest.raises(HypervisorError, match="jailer: cgroup"):
        Cgroup.create("box", memory_bytes=1, pids_max=16,
                      hierarchies=Hierarchies(2, missing, missing))
