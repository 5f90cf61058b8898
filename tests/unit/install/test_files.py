"""Writing: atomic, mode and owner kept, links kept; dry runs write nothing."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from strongbox.install import Change, InstallError, apply, files


def test_write_atomic_keeps_mode_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_bytes(b"{}")
    path.chmod(0o600)
    files.write_atomic(path, b'{"debug": true}')
    assert path.read_bytes() == b'{"debug": true}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["daemon.json"]


def test_write_atomic_creates_directories_and_readable_files(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "containerd" / "config.toml"
    files.write_atomic(path, b"version = 2\n")
    assert path.read_bytes() == b"version = 2\n"
    assert stat.S_IMODE(path.stat().st_mode) == files.NEW_FILE_MODE


def test_write_atomic_replaces_a_symlinks_target_not_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real.conf"
    real.write_bytes(b"old")
    link = tmp_path / "containers.conf"
    link.symlink_to(real)
    files.write_atomic(link, b"new")
    assert link.is_symlink()
    assert real.read_bytes() == b"new"
    files.remove(link)
    assert not real.exists()


def test_read_bytes_of_a_missing_file_is_none(tmp_path: Path) -> None:
    assert files.read_bytes(tmp_path / "nope") is None


def test_unified_diff_shows_creation_crlf_and_missing_newline(tmp_path: Path) -> None:
    path = tmp_path / "f"
    created = files.unified_diff(path, None, b"a\nb")
    assert created.startswith(f"--- /dev/null\n+++ {path}\n")
    assert created.endswith("+a\n+b\n\\ No newline at end of file\n")
    crlf = files.unified_diff(path, b"x\r\n", b"x\r\ny\r\n")
    assert "\r" not in crlf and "+y\n" in crlf
    deleted = files.unified_diff(path, b"a\n", None)
    assert "+++ /dev/null\n" in deleted and "-a\n" in deleted


def test_apply_writes_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "d" / "f"
    out = io.StringIO()
    apply([Change(path, None, b"x\n", "tool: did it")], out=out)
    assert path.read_bytes() == b"x\n"
    apply([Change(path, b"x\n", None, "tool: undid it")], out=out)
    assert not path.exists()
    assert out.getvalue() == "tool: did it\ntool: undid it\n"


def test_apply_dry_run_prints_a_diff_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "d" / "f"
    out = io.StringIO()
    apply([Change(path, None, b"x\n", "tool: did it"),
           Change(tmp_path / "g", b"same", b"same", "tool: nothing to do")], dry_run=True, out=out)
    assert not (tmp_path / "d").exists()
    assert out.getvalue() == (f"--- /dev/null\n+++ {path}\n@@ -0,0 +1 @@\n+x\n"
                              "tool: did it (dry run: nothing written)\n"
                              "tool: nothing to do (dry run: nothing written)\n")


def test_apply_names_the_file_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(InstallError, match=rf"^{blocker}/f: cannot write: "):
        apply([Change(blocker / "f", None, b"x", "m")], out=io.StringIO())


def test_unchanged_files_are_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    before = path.stat().st_ino
    apply([Change(path, b"x", b"x", "m")], out=io.StringIO())
    assert path.stat().st_ino == before
