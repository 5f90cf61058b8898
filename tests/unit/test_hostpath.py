"""Host paths resolved without following planted symlinks (real openat2 on a temporary tree)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from strongbox.hostpath import (
    is_symlink_error,
    make_beneath,
    open_beneath,
    open_exact,
    open_source,
)


def _real(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def test_open_exact_refuses_a_symlink_anywhere_on_the_path(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("/")
    (tmp_path / "dirlink").symlink_to(tmp_path / "real")
    assert _real(open_exact(str(tmp_path / "real"))) == str(tmp_path / "real")
    for path in (tmp_path / "link", tmp_path / "dirlink", tmp_path / "dirlink" / "."):
        with pytest.raises(OSError) as caught:
            open_exact(str(path))
        assert is_symlink_error(caught.value)


def test_open_source_follows_symlinks_but_not_magic_links(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert _real(open_source(str(tmp_path / "link"))) == str(tmp_path / "real")
    with pytest.raises(OSError) as caught:  # another process's root, through /proc
        open_source(f"/proc/{os.getpid()}/root/etc")
    assert is_symlink_error(caught.value)
    with pytest.raises(FileNotFoundError):
        open_source(str(tmp_path / "missing"))


def test_make_beneath_creates_directories_and_files(tmp_path: Path) -> None:
    make_beneath(str(tmp_path), "c1/mounts/0", directory=True)
    make_beneath(str(tmp_path), "c1/mounts/1", directory=False)
    make_beneath(str(tmp_path), "c1/mounts/1", directory=False)  # again: kept
    assert (tmp_path / "c1/mounts/0").is_dir()
    assert (tmp_path / "c1/mounts/1").is_file()
    assert _real(open_beneath(str(tmp_path), "c1/mounts/0")) == str(tmp_path / "c1/mounts/0")


@pytest.mark.parametrize("planted", ["c1", "c1/mounts", "c1/mounts/0"])
def test_a_planted_symlink_on_the_way_fails_instead_of_escaping(tmp_path: Path,
                                                               planted: str) -> None:
    export, outside = tmp_path / "export", tmp_path / "outside"
    export.mkdir()
    outside.mkdir()
    (export / planted).parent.mkdir(parents=True, exist_ok=True)
    (export / planted).symlink_to(outside)
    with pytest.raises(OSError) as caught:
        make_beneath(str(export), "c1/mounts/0/file", directory=False)
    assert is_symlink_error(caught.value)
    with pytest.raises(OSError):
        open_beneath(str(export), "c1/mounts/0")
    assert list(outside.iterdir()) == []  # nothing was made outside the export


def test_dot_dot_cannot_leave_the_root(tmp_path: Path) -> None:
    (tmp_path / "export").mkdir()
    with pytest.raises(OSError) as caught:
        make_beneath(str(tmp_path / "export"), "../escaped", directory=True)
    assert caught.value.errno == errno.EINVAL
    with pytest.raises(OSError) as caught:
        open_beneath(str(tmp_path / "export"), "../")
    assert is_symlink_error(caught.value)
    assert not (tmp_path / "escaped").exists()


def test_an_existing_fifo_mount_point_is_never_opened_for_io(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "point")
    make_beneath(str(tmp_path), "point", directory=False)  # would block on a FIFO
