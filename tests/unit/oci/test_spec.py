"""load_bundle() errors and rootfs resolution, and the typed accessors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from strongbox.errors import ConfigError
from strongbox.oci import spec as spec_module
from strongbox.oci.spec import (
    SpecError,
    count_cpu_list,
    cpu_quota_vcpus,
    cpuset_count,
    load_bundle,
    memory_limit,
    namespace,
    validate,
)
from tests.unit.oci.specs import edited, full_spec, minimal_spec


def _bundle(tmp_path: Path, config: object | str, rootfs: str | None = "rootfs") -> Path:
    text = config if isinstance(config, str) else json.dumps(config, indent=2)
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.json").write_text(text)
    if rootfs is not None:
        (tmp_path / rootfs).mkdir(parents=True)
    return tmp_path


def _one_line_config_error(bundle: Path | str) -> str:
    with pytest.raises(ConfigError) as info:
        load_bundle(str(bundle))
    assert not isinstance(info.value, SpecError)
    message = str(info.value)
    assert "\n" not in message
    return message


# load_bundle


def test_load_bundle_resolves_relative_root(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, minimal_spec())
    spec, rootfs = load_bundle(str(bundle))
    assert rootfs == str(tmp_path / "rootfs")
    assert spec == validate(minimal_spec())
    assert spec["root"]["path"] == "rootfs"


def test_load_bundle_relative_bundle_gives_absolute_rootfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _bundle(tmp_path / "b", edited(minimal_spec(), "root.path", "./fs/../rootfs"))
    monkeypatch.chdir(tmp_path)
    _, rootfs = load_bundle("b")
    assert rootfs == str(tmp_path / "b" / "rootfs")
    assert os.path.isabs(rootfs)


def test_load_bundle_keeps_absolute_root(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bundle = _bundle(tmp_path / "b", edited(minimal_spec(), "root.path", str(elsewhere)), None)
    assert load_bundle(str(bundle))[1] == str(elsewhere)


def test_load_bundle_missing_directory(tmp_path: Path) -> None:
    message = _one_line_config_error(tmp_path / "nope")
    assert message == f"bundle {tmp_path / 'nope'}: does not exist"


def test_load_bundle_on_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert _one_line_config_error(tmp_path / "file").endswith("is not a directory")


def test_load_bundle_without_config(tmp_path: Path) -> None:
    message = _one_line_config_error(tmp_path)
    assert message.startswith(f"{tmp_path / 'config.json'}: no such file")


def test_load_bundle_config_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()
    assert "config.json: cannot read" in _one_line_config_error(tmp_path)


def test_load_bundle_invalid_json_shows_line_and_column(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, '{\n  "ociVersion": "1.0.2",\n  "root": {"path": "rootfs",}\n}\n')
    message = _one_line_config_error(bundle)
    assert message.startswith(f"{tmp_path / 'config.json'}: invalid JSON at line 3, column ")
    assert "Expecting property name" in message


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_load_bundle_refuses_non_json_numbers(tmp_path: Path, constant: str) -> None:
    bundle = _bundle(tmp_path, '{"ociVersion": "1.0.2", "x": ' + constant + "}")
    assert f"{constant} is not a JSON value" in _one_line_config_error(bundle)


def test_load_bundle_refuses_huge_numbers(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, '{"ociVersion": ' + "9" * 5000 + "}")
    assert "invalid JSON: Exceeds the limit" in _one_line_config_error(bundle)


def test_load_bundle_refuses_non_utf8(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes(b'{"hostname": "\xff"}')
    assert "not UTF-8" in _one_line_config_error(tmp_path)


def test_load_bundle_refuses_huge_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spec_module, "MAX_CONFIG_BYTES", 64)
    bundle = _bundle(tmp_path, full_spec())
    assert "larger than" in _one_line_config_error(bundle)


def test_load_bundle_refuses_deep_nesting(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, "[" * 100_000 + "]" * 100_000)
    assert "invalid JSON" in _one_line_config_error(bundle)


def test_load_bundle_reports_spec_errors(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, edited(minimal_spec(), "process.args", []))
    with pytest.raises(SpecError, match=r"^config.json: process.args: expected "):
        load_bundle(str(bundle))


def test_load_bundle_missing_rootfs(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, minimal_spec(), rootfs=None)
    with pytest.raises(SpecError) as info:
        load_bundle(str(bundle))
    assert info.value.path == "root.path"
    assert str(info.value) == (
        "config.json: root.path: expected an existing directory, "
        f"got 'rootfs' ({tmp_path / 'rootfs'} does not exist)"
    )


def test_load_bundle_rootfs_is_a_file(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, minimal_spec(), rootfs=None)
    (tmp_path / "rootfs").write_text("")
    with pytest.raises(SpecError, match="is not a directory"):
        load_bundle(str(bundle))


# accessors


def _resources(**groups: Any) -> dict[str, Any]:
    return {"linux": {"resources": groups}}


@pytest.mark.parametrize(
    ("memory", "expected"),
    [({}, None), ({"limit": 0}, None), ({"limit": -1}, None), ({"limit": 1 << 30}, 1 << 30)],
)
def test_memory_limit(memory: dict[str, int], expected: int | None) -> None:
    assert memory_limit(_resources(memory=memory)) == expected


@pytest.mark.parametrize(
    ("cpu", "expected"),
    [
        ({}, None),
        ({"quota": 150000}, 2),
        ({"quota": 100000, "period": 100000}, 1),
        ({"quota": 50000}, 1),
        ({"quota": 250000, "period": 50000}, 5),
        ({"quota": -1, "period": 100000}, None),
        ({"quota": 200000, "period": 0}, None),
        ({"period": 100000}, None),
    ],
)
def test_cpu_quota_vcpus(cpu: dict[str, int], expected: int | None) -> None:
    assert cpu_quota_vcpus(_resources(cpu=cpu)) == expected


@pytest.mark.parametrize(
    ("cpus", "expected"),
    [
        ("0", 1),
        ("0-3,5", 5),
        ("0-3,5,7-8", 7),
        ("0-3,2-5", 6),
        ("1,1", 1),
        ("5,0-1", 3),
        ("0-4000000000", 4000000001),
    ],
)
def test_cpuset_count(cpus: str, expected: int) -> None:
    assert cpuset_count(_resources(cpu={"cpus": cpus})) == expected


@pytest.mark.parametrize(
    "spec", [{}, {"linux": {}}, _resources(cpu={}), _resources(cpu={"cpus": ""})]
)
def test_cpuset_count_unset(spec: dict[str, Any]) -> None:
    assert cpuset_count(spec) is None


@pytest.mark.parametrize("cpus", ["0-", "-1", "a", "1,", " 1", "3-1", "0-7:2/4", "\u0661", "1--2"])
def test_cpuset_count_bad_syntax(cpus: str) -> None:
    with pytest.raises(SpecError) as info:
        cpuset_count(_resources(cpu={"cpus": cpus}))
    assert info.value.path == "linux.resources.cpu.cpus"
    assert info.value.got == repr(cpus)


def test_count_cpu_list_names_the_given_path() -> None:
    with pytest.raises(SpecError, match=r"^config.json: linux.resources.cpu.mems: expected "):
        count_cpu_list("x", "linux.resources.cpu.mems")


def test_accessors_read_a_validated_full_spec() -> None:
    spec = validate(full_spec())
    assert memory_limit(spec) == 512 << 20
    assert cpu_quota_vcpus(spec) == 2
    assert cpuset_count(spec) == 5
    assert namespace(spec, "network") == {"type": "network", "path": "/var/run/netns/box"}


def test_namespace_absent() -> None:
    assert namespace(validate(minimal_spec()), "pid") is None
    assert namespace({}, "pid") is None
