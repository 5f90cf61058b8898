"""atomic_write: readers see the old content or the new, and a failed write leaves no trace.

A full file system fails a write at any of three points (the write, the
fsync, the close); whichever it is, the previous file must be intact and no
temporary file may remain (a full disk otherwise fills up with them). The
failures are injected (pure logic: no small file system needed here; the
integration tests fill a real tmpfs).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from strongbox import atomicfile
from strongbox.atomicfile import atomic_write


def _enospc(*_args: object) -> int:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_replaces_the_file_with_the_mode_asked(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("old")
    atomic_write(target, b"new", mode=0o640)
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["f"]


@pytest.mark.parametrize("step", ["write", "fsync", "close"])
def test_a_failure_at_any_step_keeps_the_old_file_and_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    target = tmp_path / "f"
    target.write_text("old")
    if step == "close":
        real_close = os.close

        def close(fd: int) -> None:
            real_close(fd)
            _enospc()  # as NFS or a quota may report it, after the data went nowhere

        monkeypatch.setattr(atomicfile.os, "close", close)
    else:
        monkeypatch.setattr(atomicfile.os, step, _enospc)
    with pytest.raises(OSError) as info:
        atomic_write(target, b"new" * 1000)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f"]


def test_a_vanished_directory_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "gone" / "f", b"x")
