"""Spec mounts: binds (rw, ro, file, substituted source), tmpfs, hostile destinations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.integration.container.runner import run, shell


def _bind(destination: str, source: Path | str, *options: str) -> dict[str, Any]:
    return {"destination": destination, "type": "bind", "source": str(source),
            "options": ["rbind", *options]}


def test_bind_mount_rw_and_ro(spec: dict[str, Any], shared_rootfs: Path, tmp_path: Path) -> None:
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "seen").write_text("from host\n")
    spec["mounts"] += [_bind("/data/rw", rw, "rw"), _bind("/data/ro", ro, "ro")]
    result = run(shell(spec, "echo written > /data/rw/f; cat /data/ro/seen; touch /data/ro/x"),
                 shared_rootfs)
    assert (rw / "f").read_text() == "written\n"
    assert result.stdout == "from host\n"
    assert result.stderr == "touch: /data/ro/x: Read-only file system\n"
    assert not (ro / "x").exists()


def test_bind_mount_of_a_file_creates_the_destination_file(
        spec: dict[str, Any], shared_rootfs: Path, tmp_path: Path) -> None:
    source = tmp_path / "conf"
    source.write_text("key=value\n")
    spec["mounts"].append(_bind("/dev/shm/etc/app.conf", source, "ro"))
    result = run(shell(spec, "cat /dev/shm/etc/app.conf"), shared_rootfs)
    assert result.stdout == "key=value\n"


def test_mount_sources_replace_the_spec_source(spec: dict[str, Any], shared_rootfs: Path,
                                               tmp_path: Path) -> None:
    (tmp_path / "shared").write_text("shared into the guest\n")
    spec["mounts"].append(_bind("/vol", "/host/path/that/the/guest/lacks"))
    index = len(spec["mounts"]) - 1
    result = run(shell(spec, "cat /vol/shared"), shared_rootfs,
                 mount_sources={index: str(tmp_path)})
    assert result.stdout == "shared into the guest\n"


def test_tmpfs_mount_with_options(spec: dict[str, Any], shared_rootfs: Path) -> None:
    spec["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", "mode=1770", "size=1m"]})
    result = run(shell(spec, "grep ' /scratch ' /proc/mounts; stat -c %a /scratch; "
                       "echo ok > /scratch/f && cat /scratch/f"), shared_rootfs)
    line, mode, content = result.stdout.splitlines()
    fields = line.split()
    assert fields[2] == "tmpfs"
    assert {"rw", "nosuid", "nodev", "size=1024k", "mode=1770"} <= set(fields[3].split(","))
    assert (mode, content) == ("1770", "ok")


def test_symlink_in_rootfs_cannot_send_a_mount_outside(
        spec: dict[str, Any], writable_rootfs: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), writable_rootfs / "escape")  # absolute: meant as the host's path
    os.symlink("../../../../../../../..", writable_rootfs / "up")
    spec["mounts"] += [
        {"destination": "/escape/t1", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/up/t2", "type": "tmpfs", "source": "tmpfs"},
    ]
    result = run(shell(spec, "grep -E ' [^ ]*/t[12] ' /proc/mounts | cut -d' ' -f2"),
                 writable_rootfs)
    assert result.stdout.split() == [f"{outside}/t1", "/t2"]  # inside the rootfs
    assert (writable_rootfs / outside.relative_to("/") / "t1").is_dir()
    assert not (outside / "t1").exists()
    assert (writable_rootfs / "t2").is_dir()
