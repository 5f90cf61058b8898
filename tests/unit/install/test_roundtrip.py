"""install then uninstall gives back the original bytes, for every file shape.

Also: the installed file parses and has the entry where the engine reads
it, and a second install changes nothing.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from strongbox.install import Change, apply
from strongbox.install.containerd import ContainerdConfig
from strongbox.install.docker import DockerConfig
from strongbox.install.podman import PodmanConfig
from strongbox.install.target import ConfigTarget
from tests.unit.install import shapes

RUNTIME = "/usr/local/bin/strongbox"
OTHER_RUNTIME = "/opt/strongbox/bin/strongbox"

Factory = Callable[[Path, str], ConfigTarget]


def _containerd(path: Path, runtime: str) -> ConfigTarget:
    return ContainerdConfig(path)


CASES: list[tuple[str, Factory, str, bytes | None]] = [
    *[("containerd", _containerd, name, data) for name, data in shapes.CONTAINERD.items()],
    *[("podman", PodmanConfig, name, data) for name, data in shapes.PODMAN.items()],
    *[("docker", DockerConfig, name, data) for name, data in shapes.DOCKER.items()],
]
IDS = [f"{tool}-{name}" for tool, _, name, _ in CASES]


def parsed(tool: str, data: bytes) -> dict[str, Any]:
    text = data.decode()
    if tool == "docker":
        text = text.removeprefix("\ufeff")
        return json.loads(text) if text.strip() else {}
    return tomllib.loads(text)


def strongbox_entry(tool: str, doc: dict[str, Any]) -> Any:
    if tool == "podman":
        return doc["engine"]["runtimes"]["strongbox"]
    if tool == "docker":
        return doc["runtimes"]["strongbox"]
    cri = {1: "cri", 2: "io.containerd.grpc.v1.cri", 3: "io.containerd.cri.v1.runtime"}
    plugin = cri[doc.get("version", 1)]
    return doc["plugins"][plugin]["containerd"]["runtimes"]["strongbox"]


@pytest.mark.parametrize(("tool", "factory", "name", "before"), CASES, ids=IDS)
def test_install_uninstall_round_trip(tool: str, factory: Factory, name: str,
                                      before: bytes | None, tmp_path: Path) -> None:
    target = factory(tmp_path / "conf", RUNTIME)
    installed = target.install(before)
    assert installed.changed
    assert installed.after is not None
    assert installed.message.startswith(f"{tool}: registered runtime strongbox in ")

    doc = parsed(tool, installed.after)
    expected = {"containerd": {"runtime_type": "io.containerd.strongbox.v2"},
                "podman": [RUNTIME], "docker": {"path": RUNTIME}}[tool]
    assert strongbox_entry(tool, doc) == expected
    if before is not None:  # everything that was there still is, unchanged
        old = parsed(tool, before)
        assert _without_strongbox(tool, doc, old) == old

    again = target.install(installed.after)
    assert not again.changed
    assert again.message.startswith(f"{tool}: runtime strongbox already registered in ")

    removed = target.uninstall(installed.after)
    assert removed.after == before
    assert removed.message.startswith(f"{tool}: removed runtime strongbox from ")

    nothing = target.uninstall(before)
    assert not nothing.changed
    assert "not registered" in nothing.message


def _without_strongbox(tool: str, doc: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """``doc`` minus the strongbox entry and any table install had to create for it."""
    doc = json.loads(json.dumps(doc))
    if tool == "docker":
        del doc["runtimes"]["strongbox"]
        if "runtimes" not in old:
            del doc["runtimes"]
        return doc
    if tool == "podman":
        del doc["engine"]["runtimes"]["strongbox"]
        if "runtimes" not in old.get("engine", {}):
            del doc["engine"]["runtimes"]
            if "engine" not in old:
                del doc["engine"]
        return doc
    keys = ["plugins", {1: "cri", 2: "io.containerd.grpc.v1.cri",
                        3: "io.containerd.cri.v1.runtime"}[doc.get("version", 1)],
            "containerd", "runtimes"]
    tables = [doc]
    for key in keys:
        tables.append(tables[-1][key])
    del tables[-1]["strongbox"]
    for depth in range(len(keys), 0, -1):  # drop the parent tables install created
        if not tables[depth] and not _has(old, keys[:depth]):
            del tables[depth - 1][keys[depth - 1]]
    if "version" not in old:
        doc.pop("version", None)
    return doc


def _has(doc: dict[str, Any], keys: list[str]) -> bool:
    for key in keys:
        if key not in doc:
            return False
        doc = doc[key]
    return True


@pytest.mark.parametrize(("tool", "factory", "name", "before"), CASES, ids=IDS)
def test_new_runtime_path_replaces_strongboxs_entry(tool: str, factory: Factory, name: str,
                                                    before: bytes | None,
                                                    tmp_path: Path) -> None:
    first = factory(tmp_path / "conf", RUNTIME).install(before)
    assert first.after is not None
    second = factory(tmp_path / "conf", OTHER_RUNTIME).install(first.after)
    assert second.after is not None
    if tool == "containerd":  # the runtime path is not in containerd's config
        assert not second.changed
    else:
        assert second.message.startswith(f"{tool}: updated runtime strongbox in ")
        assert OTHER_RUNTIME.encode() in second.after
        assert RUNTIME.encode() not in second.after
    assert factory(tmp_path / "conf", RUNTIME).uninstall(second.after).after == before


@pytest.mark.parametrize(("tool", "factory", "name", "before"), CASES, ids=IDS)
def test_round_trip_on_disk(tool: str, factory: Factory, name: str, before: bytes | None,
                            tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "etc" / tool / "conf"
    if before is not None:
        path.parent.mkdir(parents=True)
        path.write_bytes(before)
    target = factory(path, RUNTIME)
    apply([target.install(_read(path))])
    assert path.exists()
    apply([target.uninstall(_read(path))])
    assert _read(path) == before
    assert len(capsys.readouterr().out.splitlines()) == 2


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def test_the_change_type_knows_when_nothing_changes() -> None:
    assert not Change(Path("x"), b"a", b"a", "m").changed
    assert not Change(Path("x"), None, None, "m").changed
    assert Change(Path("x"), None, b"", "m").changed
    assert Change(Path("x"), b"", None, "m").changed
