"""The newc writer produces archives cpio(1) and the kernel read."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest

from strongbox.guest.cpio import CpioWriter


def _archive() -> bytes:
    buf = io.BytesIO()
    cpio = CpioWriter(buf)
    cpio.add_dir("etc")
    cpio.add_file("etc/hostname", b"guest\n")
    cpio.add_file("usr/bin/tool", b"\x7fELF" + bytes(range(256)), 0o755)
    cpio.add_symlink("bin/sh", "busybox")
    cpio.add_char_device("dev/console", 5, 1)
    cpio.close()
    return buf.getvalue()


def test_entries_are_aligned_and_terminated() -> None:
    data = _archive()
    assert data.startswith(b"070701")
    assert len(data) % 4 == 0
    assert b"TRAILER!!!" in data[-128:]


def test_reproducible() -> None:
    assert _archive() == _archive()


@pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio(1) not installed")
def test_cpio_tool_reads_it(tmp_path: Path) -> None:
    listing = subprocess.run(["cpio", "-itv"], input=_archive(), capture_output=True,
                             check=True).stdout.decode()
    names = [line.split()[-1] if "->" not in line else line.split()[-3]
             for line in listing.splitlines()]
    # parents were created implicitly, before their children
    assert names.index("usr") < names.index("usr/bin") < names.index("usr/bin/tool")
    assert "bin/sh -> busybox" in listing
    assert any(line.startswith("crw") and "dev/console" in line for line in listing.splitlines())
    subprocess.run(["cpio", "-id", "--no-absolute-filenames"], input=_archive(), cwd=tmp_path,
                   capture_output=True, check=False)
    assert (tmp_path / "etc/hostname").read_bytes() == b"guest\n"
    assert (tmp_path / "usr/bin/tool").stat().st_mode & 0o777 == 0o755


def test_add_tree(tmp_path: Path) -> None:
    (tmp_path / "a/b").mkdir(parents=True)
    (tmp_path / "a/b/f").write_text("x")
    (tmp_path / "a/link").symlink_to("b/f")
    buf = io.BytesIO()
    cpio = CpioWriter(buf)
    cpio.add_tree(tmp_path)
    cpio.close()
    data = buf.getvalue()
    assert b"a/b/f\0" in data and b"a/link\0" in data and b"b/f" in data
