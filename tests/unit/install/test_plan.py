"""Planning: every file is checked before any is written; defaults found from the executable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strongbox.errors import ConfigError
from strongbox.install import ConfigFileError
from strongbox.install.plan import Options, default_shim, locate_runtime, make_plan


def _options(tmp_path: Path, **kw: object) -> Options:
    args: dict[str, object] = {
        "containerd_config": tmp_path / "containerd" / "config.toml",
        "podman_config": tmp_path / "containers" / "containers.conf",
        "docker_config": tmp_path / "docker" / "daemon.json",
        "runtime_path": "/usr/local/bin/strongbox",
        "shim_path": "/usr/local/bin/containerd-shim-strongbox-v2",
    }
    args.update(kw)
    return Options(**args)  # type: ignore[arg-type]


def test_a_plan_has_one_change_per_selected_engine(tmp_path: Path) -> None:
    plan = make_plan(_options(tmp_path), search_path="/usr/local/bin")
    assert [c.path.parent.name for c in plan.changes] == ["containerd", "containers", "docker"]
    assert all(c.before is None and c.after for c in plan.changes)
    only = make_plan(_options(tmp_path, tools=("docker",)), search_path="/usr/local/bin")
    assert [c.path.name for c in only.changes] == ["daemon.json"]
    assert not list(tmp_path.iterdir())  # planning writes nothing


def test_one_invalid_file_stops_the_plan(tmp_path: Path) -> None:
    docker = tmp_path / "docker" / "daemon.json"
    docker.parent.mkdir()
    docker.write_bytes(b"{oops")
    with pytest.raises(ConfigFileError, match=f"^{docker}: is not valid JSON"):
        make_plan(_options(tmp_path))


def test_notes_for_a_shim_off_path_and_a_missing_runtime(tmp_path: Path) -> None:
    plan = make_plan(_options(tmp_path, runtime_path=str(tmp_path / "bin" / "strongbox"),
                              shim_path=None), search_path="/usr/bin")
    assert len(plan.notes) == 2
    assert plan.notes[0].startswith("containerd: note: ")
    assert f"{tmp_path / 'bin'} is not on PATH" in plan.notes[0]
    runtime = tmp_path / "bin" / "strongbox"
    assert plan.notes[1] == f"note: the runtime {runtime} does not exist (yet)"
    assert not make_plan(_options(tmp_path, uninstall=True), search_path="/usr/bin").notes


def test_relative_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    plan = make_plan(_options(tmp_path, runtime_path="./strongbox", tools=("docker",)))
    assert plan.changes[0].after is not None
    assert str(tmp_path / "strongbox").encode() in plan.changes[0].after


def test_unknown_engines_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown engine cri-o"):
        make_plan(_options(tmp_path, tools=("cri-o",)))


def test_uninstall_needs_no_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr("sys.argv", ["pytest"])
    plan = make_plan(_options(tmp_path, runtime_path=None, shim_path=None, uninstall=True))
    assert all(not c.changed for c in plan.changes)


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_locate_runtime_prefers_the_running_executable(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    running = _executable(tmp_path / "venv" / "bin" / "strongbox")
    on_path = _executable(tmp_path / "usr" / "bin" / "strongbox")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert locate_runtime(str(running)) == str(running)
    assert locate_runtime("strongbox") == str(on_path)
    assert locate_runtime("/x/strongbox/__main__.py") == str(on_path)
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr("sys.executable", str(tmp_path / "elsewhere" / "python"))
    with pytest.raises(ConfigError, match="pass --runtime-path"):
        locate_runtime("pytest")
    monkeypatch.setattr("sys.executable", str(running.parent / "python"))
    assert locate_runtime("pytest") == str(running)  # python -m strongbox in a venv


def test_the_default_shim_is_next_to_the_runtime() -> None:
    assert default_shim("/usr/local/bin/strongbox") == (
        f"/usr/local/bin{os.sep}containerd-shim-strongbox-v2")


def test_a_bare_runtime_name_is_looked_up_on_path(tmp_path: Path) -> None:
    runtime = _executable(tmp_path / "bin" / "sbx")
    plan = make_plan(_options(tmp_path, runtime_path="sbx", tools=("podman",)),
                     search_path=str(runtime.parent))
    assert plan.changes[0].after is not None
    assert f'strongbox = ["{runtime}"]'.encode() in plan.changes[0].after
