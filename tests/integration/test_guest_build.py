"""`strongbox guest build` produces both guest assets from Debian packages, once."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.framework import cli

pytestmark = pytest.mark.vm


@pytest.mark.slow
def test_build_from_empty_state_dir_then_cached(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = cli.run("--state-dir", state, "guest", "build", timeout=1800)
    first.check()
    # Progress was shown while it worked, not minutes of silence.
    assert "compiling kernel" in first.stderr and "~50%" in first.stderr
    info = cli.run("--state-dir", state, "guest", "info", "--json").check().json()
    kernel, initrd = Path(info["kernel"]["path"]), Path(info["initrd"]["path"])
    assert kernel.is_file() and initrd.is_file()
    assert kernel.read_bytes()[:4] == b"\x7fELF"  # QEMU boots the ELF through PVH
    assert initrd.read_bytes()[:6] == b"070701"  # newc cpio, uncompressed
    assert info["kernel"]["size"] == kernel.stat().st_size
    before = {p: p.stat().st_mtime_ns for p in (kernel, initrd)}

    second = cli.run("--state-dir", state, "guest", "build", "--json", timeout=600).check()
    result = second.json()
    assert result["kernel"]["rebuilt"] is False
    assert result["initrd"]["rebuilt"] is False
    assert {p: p.stat().st_mtime_ns for p in (kernel, initrd)} == before
    assert cli.run("--state-dir", state, "guest", "info", "--json").check().json() == info

    # The freshly built pair boots.
    report = cli.run("--state-dir", state, "--root", tmp_path / "run", "guest", "boot",
                     "--json").check().json()
    assert report["kernel_release"].startswith("6.1.")


def test_info_human_and_json(guest_assets: dict[str, Path]) -> None:
    info = cli.run("guest", "info", "--json").check().json()
    assert set(info) == {"state_dir", "kernel", "initrd"}
    for kind in ("kernel", "initrd"):
        entry = info[kind]
        assert Path(entry["path"]) == guest_assets[kind]
        assert len(entry["sha256"]) == 64 and entry["size"] > 0 and entry["present"]
    text = cli.run("guest", "info").check().stdout
    assert str(guest_assets["kernel"]) in text and "sha256" in text


def test_info_when_nothing_built(tmp_path: Path) -> None:
    out = cli.run("--state-dir", tmp_path, "guest", "info").check().stdout
    assert "not built" in out
    data = cli.run("--state-dir", tmp_path, "guest", "info", "--json").check().json()
    assert data["kernel"] is None and data["initrd"] is None


def test_build_into_unwritable_state_dir(tmp_path: Path) -> None:
    readonly = tmp_path / "ro"
    readonly.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", readonly], check=True)
    try:
        result = cli.run("--state-dir", readonly, "guest", "build")
        cli.assert_one_line_error(result, str(readonly), "Read-only file system")
    finally:
        subprocess.run(["umount", readonly], check=True)
