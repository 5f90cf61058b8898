"""``strongbox install`` through the real entry point, on files in a temporary /etc."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from strongbox.runtime.main import main

ORIGINAL = {
    "containerd/config.toml": b'version = 2\r\n# keep me\r\n[grpc]\r\n  address = "/run/c.sock"',
    "containers/containers.conf": b'[engine.runtimes]\ncrun = ["/usr/bin/crun"]  # fast\n',
    "docker/daemon.json": b'{\n    "runtimes": {\n        "runc": {"path": "runc"}\n    }\n}',
}


@pytest.fixture
def etc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake /etc with the three files, and a shim on PATH so no note is printed."""
    etc = tmp_path / "etc"
    for name, data in ORIGINAL.items():
        (etc / name).parent.mkdir(parents=True, exist_ok=True)
        (etc / name).write_bytes(data)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("strongbox", "containerd-shim-strongbox-v2"):
        (bindir / name).write_text("#!/bin/sh\n")
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    return etc


def _args(etc: Path, *extra: str) -> list[str]:
    bindir = etc.parent / "bin"
    return ["install", "--containerd-config", str(etc / "containerd/config.toml"),
            "--podman-config", str(etc / "containers/containers.conf"),
            "--docker-config", str(etc / "docker/daemon.json"),
            "--runtime-path", str(bindir / "strongbox"),
            "--shim-path", str(bindir / "containerd-shim-strongbox-v2"), *extra]


def _contents(etc: Path) -> dict[str, bytes | None]:
    return {name: (etc / name).read_bytes() if (etc / name).exists() else None
            for name in ORIGINAL}


def test_install_then_uninstall(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_args(etc)) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"containerd: registered runtime strongbox in {etc}/containerd/config.toml",
        f"podman: registered runtime strongbox in {etc}/containers/containers.conf",
        f"docker: registered runtime strongbox in {etc}/docker/daemon.json",
    ]
    runtime = str(etc.parent / "bin" / "strongbox")
    containerd = tomllib.loads((etc / "containerd/config.toml").read_text())
    assert containerd["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"][
        "strongbox"] == {"runtime_type": "io.containerd.strongbox.v2"}
    podman = tomllib.loads((etc / "containers/containers.conf").read_text())
    assert podman["engine"]["runtimes"] == {"strongbox": [runtime], "crun": ["/usr/bin/crun"]}
    docker = json.loads((etc / "docker/daemon.json").read_text())
    assert docker["runtimes"] == {"strongbox": {"path": runtime}, "runc": {"path": "runc"}}

    assert main(_args(etc)) == 0
    assert "already registered" in capsys.readouterr().out

    assert main(_args(etc, "--uninstall")) == 0
    assert [line.split(" in ")[0].split(" from ")[0]
            for line in capsys.readouterr().out.splitlines()] == [
        "containerd: removed runtime strongbox", "podman: removed runtime strongbox",
        "docker: removed runtime strongbox"]
    assert _contents(etc) == ORIGINAL


def test_missing_files_and_directories_come_and_go(etc: Path) -> None:
    for name in ORIGINAL:
        (etc / name).unlink()
        (etc / name).parent.rmdir()
    assert main(_args(etc)) == 0
    assert all(data for data in _contents(etc).values())
    assert main(_args(etc, "--uninstall")) == 0
    assert all(data is None for data in _contents(etc).values())


def test_dry_run_prints_diffs_and_writes_nothing(etc: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_args(etc, "--dry-run")) == 0
    out = capsys.readouterr().out
    assert _contents(etc) == ORIGINAL
    for name in ORIGINAL:
        assert f"--- {etc / name}\n+++ {etc / name}\n" in out
    assert "+# strongbox install: begin\n" in out
    assert out.count("(dry run: nothing written)") == 3


def test_only_selects_engines(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_args(etc, "--only", "podman,docker")) == 0
    assert [line.split(":")[0] for line in capsys.readouterr().out.splitlines()] == [
        "podman", "docker"]
    assert (etc / "containerd/config.toml").read_bytes() == ORIGINAL["containerd/config.toml"]


def test_kubernetes_manifest(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_args(etc, "--only", "kubernetes")) == 0
    assert capsys.readouterr().out == ("apiVersion: node.k8s.io/v1\nkind: RuntimeClass\n"
                                       "metadata:\n  name: strongbox\nhandler: strongbox\n")
    assert _contents(etc) == ORIGINAL
    assert main(_args(etc, "--only", "docker", "--kubernetes")) == 0
    assert capsys.readouterr().out.endswith("---\napiVersion: node.k8s.io/v1\nkind: RuntimeClass\n"
                                            "metadata:\n  name: strongbox\nhandler: strongbox\n")
    assert main(_args(etc, "--uninstall", "--kubernetes")) == 0
    assert "kubectl delete runtimeclass strongbox" in capsys.readouterr().out


def test_an_invalid_file_is_one_error_line_and_nothing_is_written(
        etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (etc / "docker/daemon.json").write_bytes(b'{"runtimes": {,}}')
    assert main(_args(etc)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"strongbox: error: {etc}/docker/daemon.json: is not valid "
                                   "JSON: ")
    assert captured.err.count("\n") == 1
    assert _contents(etc)["containerd/config.toml"] == ORIGINAL["containerd/config.toml"]


def test_a_foreign_strongbox_entry_is_refused(etc: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (etc / "containers/containers.conf").write_bytes(b'[engine.runtimes]\nstrongbox = ["/x"]\n')
    assert main(_args(etc)) == 1
    assert capsys.readouterr().err == (
        f"strongbox: error: {etc}/containers/containers.conf: a 'strongbox' runtime is already "
        "configured, but not by strongbox install: remove it, or leave podman out with --only\n")


def test_shim_note(etc: Path, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(_args(etc, "--only", "containerd")) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[1].startswith("containerd: note: containerd runs containerd-shim-strongbox-v2")


def test_unknown_only_is_a_usage_error(etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(_args(etc, "--only", "docker,cri-o"))
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        "strongbox: error: install: argument --only: unknown cri-o: choose from containerd, "
        "podman, docker, kubernetes\n")


def test_help_shows_the_librarys_defaults() -> None:
    from strongbox.install import containerd, docker, plan, podman
    from strongbox.runtime.commands import install_cmd

    library = {"containerd": containerd.DEFAULT_PATH, "podman": podman.DEFAULT_PATH,
               "docker": docker.DEFAULT_PATH}
    shown = dict(install_cmd.DEFAULTS)
    assert shown == {name: str(path) for name, path in library.items()}
    assert install_cmd.ENGINES == plan.TOOLS
