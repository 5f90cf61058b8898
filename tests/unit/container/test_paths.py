"""Resolving container paths inside a rootfs full of hostile symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strongbox.container.errors import ContainerError
from strongbox.container.paths import check_inside, create_file, mkdir_all, resolve


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "usr" / "lib").mkdir(parents=True)
    return root


def test_plain_paths(root: Path) -> None:
    r = str(root)
    assert resolve(r, "/etc/passwd") == f"{r}/etc/passwd"
    assert resolve(r, "etc//./x/../y") == f"{r}/etc/y"
    assert resolve(r, "/") == r
    assert resolve(r, "/../../..") == r


def test_absolute_symlink_restarts_at_the_rootfs(root: Path) -> None:
    os.symlink("/", root / "escape")
    os.symlink("/usr/lib", root / "lib")
    assert resolve(str(root), "/escape/tmp") == f"{root}/tmp"
    assert resolve(str(root), "/lib/x") == f"{root}/usr/lib/x"


def test_dotdot_symlink_stops_at_the_rootfs(root: Path) -> None:
    os.symlink("../../../../../../../../..", root / "etc" / "up")
    os.symlink("../../..", root / "usr" / "lib" / "up3")
    assert resolve(str(root), "/etc/up/target") == f"{root}/target"
    assert resolve(str(root), "/usr/lib/up3/etc") == f"{root}/etc"


def test_chains_of_symlinks_and_missing_tails(root: Path) -> None:
    os.symlink("b", root / "a")
    os.symlink("/c/../etc", root / "b")
    assert resolve(str(root), "/a/new/dir") == f"{root}/etc/new/dir"


def test_symlink_loop_is_an_error(root: Path) -> None:
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    with pytest.raises(ContainerError, match="too many levels of symbolic links"):
        resolve(str(root), "/loop1/x")


def test_mkdir_all_and_create_file_stay_inside(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), root / "link")  # a host path, meant to escape
    made = mkdir_all(str(root), "/link/sub/dir")
    assert made == f"{root}{outside}/sub/dir"
    assert Path(made).is_dir()
    assert not (outside / "sub").exists()
    created = create_file(str(root), "/link/file")
    assert Path(created).is_file() and not (outside / "file").exists()


def test_check_inside_catches_a_swapped_component(root: Path, tmp_path: Path) -> None:
    target = resolve(str(root), "/etc/x")
    (root / "etc").rename(root / "etc.old")
    os.symlink(str(tmp_path), root / "etc")  # raced in after resolution
    with pytest.raises(ContainerError, match="outside the container's root file system"):
        check_inside(str(root), target, "mount /etc/x")
