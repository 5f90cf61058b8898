"""containerd: the table for each config version, refusals, and the shim note."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from strongbox.install import ConfigFileError, UnmanagedEntryError
from strongbox.install.containerd import (
    SHIM_BINARY,
    ContainerdConfig,
    shim_note,
    table_header,
)

PATH = Path("/etc/containerd/config.toml")


@pytest.mark.parametrize(
    ("version", "header"),
    [
        (1, "[plugins.cri.containerd.runtimes.strongbox]"),
        (2, '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.strongbox]'),
        (3, '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.strongbox]'),
    ],
)
def test_table_header_per_version(version: int, header: str) -> None:
    assert table_header(version) == header


@pytest.mark.parametrize(
    ("before", "header"),
    [
        (b"", "[plugins.cri.containerd.runtimes.strongbox]"),
        (b"version = 1\n", "[plugins.cri.containerd.runtimes.strongbox]"),
        (b"version = 2\n",
         '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.strongbox]'),
        (b"version = 3\n",
         '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.strongbox]'),
    ],
)
def test_the_files_version_picks_the_table(before: bytes, header: str) -> None:
    after = ContainerdConfig(PATH).install(before).after
    assert after is not None
    assert f"\n{header}\n" in after.decode()
    assert b"version" not in after[len(before):]  # only a new file gets a version


def test_a_missing_file_becomes_version_2_and_nothing_else() -> None:
    after = ContainerdConfig(PATH).install(None).after
    assert after is not None
    assert tomllib.loads(after.decode()) == {
        "version": 2,
        "plugins": {"io.containerd.grpc.v1.cri": {"containerd": {"runtimes": {
            "strongbox": {"runtime_type": "io.containerd.strongbox.v2"}}}}},
    }
    assert ContainerdConfig(PATH).uninstall(after).after is None


@pytest.mark.parametrize(
    "before",
    [
        b'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.strongbox]\n'
        b'  runtime_type = "io.containerd.kata.v2"\n',
        b'[plugins.cri.containerd.runtimes.strongbox]\n'
        b'runtime_type = "io.containerd.strongbox.v2"\n',
        b'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n'
        b'runtimes = { strongbox = { runtime_type = "x" } }\n',
    ],
)
def test_a_strongbox_runtime_someone_else_added_is_refused(before: bytes) -> None:
    with pytest.raises(UnmanagedEntryError, match=r"^/etc/containerd/config.toml: a 'strongbox' "
                       r"runtime is already configured, but not by strongbox install"):
        ContainerdConfig(PATH).install(before)
    change = ContainerdConfig(PATH).uninstall(before)
    assert not change.changed and "left runtime strongbox alone" in change.message


def test_a_runtimes_table_in_inline_form_cannot_take_the_block() -> None:
    before = (b'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n'
              b'runtimes = { runc = { runtime_type = "io.containerd.runc.v2" } }\n')
    with pytest.raises(ConfigFileError, match="would make it invalid TOML"):
        ContainerdConfig(PATH).install(before)


@pytest.mark.parametrize(
    ("before", "problem"),
    [
        (b"version = \n", "is not valid TOML"),
        (b"[a]\n[a]\n", "is not valid TOML"),
        (b"version = 4\n", "config version 4 is not one strongbox knows"),
        (b'version = "2"\n', "config version '2' is not one strongbox knows"),
        (b"\xff\xfe", "not UTF-8 text"),
    ],
)
def test_invalid_files_are_refused_in_one_line(before: bytes, problem: str) -> None:
    for action in (ContainerdConfig(PATH).install, ContainerdConfig(PATH).uninstall):
        with pytest.raises(ConfigFileError) as info:
            action(before)
        assert problem in str(info.value)
        assert str(info.value).startswith(f"{PATH}: ")
        assert "\n" not in str(info.value)


def test_a_damaged_block_that_would_leave_invalid_toml_is_refused() -> None:
    after = ContainerdConfig(PATH).install(b"[a]\nx = 1\n").after
    assert after is not None
    damaged = after.replace(b"# strongbox install: end\n", b"# strongbox install: end\n[a]\n")
    with pytest.raises(ConfigFileError, match="not valid TOML"):
        ContainerdConfig(PATH).uninstall(damaged)


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_no_note_when_the_shim_is_on_path(tmp_path: Path) -> None:
    shim = _executable(tmp_path / "bin" / SHIM_BINARY)
    assert shim_note(str(shim), f"/nonexistent{os.pathsep}{tmp_path / 'bin'}") is None


def test_no_note_when_the_shim_is_next_to_containerd(tmp_path: Path) -> None:
    shim = _executable(tmp_path / "bin" / SHIM_BINARY)
    assert shim_note(str(shim), "/usr/bin", containerd=str(tmp_path / "bin" / "containerd")) is None


def test_note_when_the_shim_is_off_path(tmp_path: Path) -> None:
    shim = _executable(tmp_path / "venv" / "bin" / SHIM_BINARY)
    note = shim_note(str(shim), "/usr/bin:/bin")
    assert note is not None
    assert note.startswith("containerd: note: containerd runs containerd-shim-strongbox-v2 "
                           "from its PATH or from the directory containerd is in")
    assert f"{tmp_path / 'venv' / 'bin'} is not on PATH" in note
    assert "does not exist" not in note


def test_note_when_the_shim_is_missing_or_misnamed(tmp_path: Path) -> None:
    missing = shim_note(str(tmp_path / SHIM_BINARY), str(tmp_path))
    assert missing is not None and f"{tmp_path / SHIM_BINARY} does not exist" in missing
    misnamed = shim_note(str(_executable(tmp_path / "shim")), str(tmp_path))
    assert misnamed is not None and f"must be named {SHIM_BINARY}" in misnamed
