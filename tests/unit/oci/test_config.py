"""The top level of config.json: round trip, normalization, and the config.md rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from strongbox.errors import ConfigError
from strongbox.oci.spec import SpecError, validate
from tests.unit.oci.specs import DELETE, check_rejection, edited, full_spec, minimal_spec, rejected


def test_full_spec_round_trips_unchanged() -> None:
    spec = full_spec()
    assert validate(spec) == full_spec()


def test_validate_returns_a_deep_copy_and_leaves_the_input_alone() -> None:
    spec = minimal_spec()
    before = copy.deepcopy(spec)
    result = validate(spec)
    assert spec == before
    result["process"]["args"].append("-x")
    assert spec["process"]["args"] == ["sh"]


def test_validate_is_idempotent() -> None:
    once = validate(minimal_spec())
    assert validate(once) == once


def test_minimal_spec_is_normalized() -> None:
    assert validate(minimal_spec()) == {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": False},
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0, "additionalGids": []},
            "args": ["sh"],
            "env": [],
            "cwd": "/",
            "rlimits": [],
            "noNewPrivileges": False,
        },
        "hostname": "",
        "mounts": [],
        "annotations": {},
        "linux": {
            "namespaces": [],
            "resources": {},
            "sysctl": {},
            "maskedPaths": [],
            "readonlyPaths": [],
        },
    }


def test_capabilities_stay_absent_when_absent() -> None:
    assert "capabilities" not in validate(minimal_spec())["process"]


def test_null_reads_as_absent() -> None:
    spec = minimal_spec()
    spec.update(hostname=None, domainname=None, linux=None)
    spec["process"].update(capabilities=None, user={"uid": 0, "gid": 0, "umask": None})
    result = validate(spec)
    assert result["hostname"] == ""
    assert "domainname" not in result
    assert result["linux"]["namespaces"] == []
    assert "capabilities" not in result["process"]
    assert "umask" not in result["process"]["user"]


def test_unknown_keys_are_kept() -> None:
    spec = minimal_spec()
    spec["future"] = {"anything": [1, 2]}
    spec["process"]["scheduler"] = {"policy": "SCHED_OTHER"}
    result = validate(spec)
    assert result["future"] == {"anything": [1, 2]}
    assert result["process"]["scheduler"] == {"policy": "SCHED_OTHER"}


def test_process_is_optional_when_not_required() -> None:
    spec = minimal_spec()
    del spec["process"]
    assert "process" not in validate(spec, require_process=False)
    assert rejected(spec).path == "process"


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.0", "1.2.1+build.5"])
def test_every_1x_version_is_accepted(version: str) -> None:
    assert validate(edited(minimal_spec(), "ociVersion", version))["ociVersion"] == version


def test_mount_defaults_and_bind_type() -> None:
    spec = minimal_spec()
    spec["mounts"] = [
        {"destination": "/data", "options": ["rbind", "ro"]},
        {"destination": "/tmp", "type": "tmpfs"},
    ]
    mounts = validate(spec)["mounts"]
    assert mounts[0] == {
        "destination": "/data",
        "options": ["rbind", "ro"],
        "source": "",
        "type": "bind",
    }
    assert mounts[1] == {"destination": "/tmp", "type": "tmpfs", "source": "", "options": []}


def test_error_is_a_config_error_with_context() -> None:
    error = rejected(edited(minimal_spec(), "hostname", 5))
    assert isinstance(error, ConfigError)
    assert (error.path, error.expected, error.got) == ("hostname", "a string", "5")


@pytest.mark.parametrize("document", [None, [], "spec", 5])
def test_document_must_be_an_object(document: object) -> None:
    error = rejected(document)
    assert error.path == ""
    assert str(error).startswith("config.json: expected an object, got ")


def test_long_values_are_cut_to_one_short_line() -> None:
    error = rejected(edited(minimal_spec(), "hostname", ["x\ny" * 50] * 100))
    assert len(error.got) <= 60
    assert error.got.endswith("...")
    assert "\n" not in str(error)


def test_too_deep_a_document_is_a_spec_error() -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    error = rejected(edited(minimal_spec(), "annotations", deep))
    assert error.path == ""


CASES = [
    # (edit path, value, error path, part of the expectation)
    ("ociVersion", DELETE, "ociVersion", "a string"),
    ("ociVersion", "2.0.0", "ociVersion", "with major 1"),
    ("ociVersion", "1.0", "ociVersion", "with major 1"),
    ("ociVersion", 1, "ociVersion", "a string"),
    ("root", DELETE, "root", "an object"),
    ("root", "rootfs", "root", "an object"),
    ("root.path", "", "root.path", "a non-empty string"),
    ("root.path", DELETE, "root.path", "a non-empty string"),
    ("root.readonly", "yes", "root.readonly", "a boolean"),
    ("process", DELETE, "process", "an object"),
    ("hostname", 5, "hostname", "a string"),
    ("domainname", [], "domainname", "a string"),
    ("mounts", {}, "mounts", "an array of objects"),
    ("mounts[0]", "proc", "mounts[0]", "an object"),
    ("mounts[0].destination", "proc", "mounts[0].destination", "an absolute path"),
    ("mounts[1].destination", DELETE, "mounts[1].destination", "an absolute path"),
    ("mounts[0].type", DELETE, "mounts[0].type", "only bind mounts may omit it"),
    ("mounts[0].type", 7, "mounts[0].type", "a string"),
    ("mounts[0].source", 5, "mounts[0].source", "a string"),
    ("mounts[0].options", "ro", "mounts[0].options", "an array of strings"),
    ("mounts[1].options[1]", 5, "mounts[1].options[1]", "a string"),
    ("mounts[1].uidMappings[0].size", DELETE, "mounts[1].uidMappings[0].size", "a uint32"),
    ("hooks", [], "hooks", "an object"),
    ("hooks.poststop", "x", "hooks.poststop", "an array of objects"),
    ("hooks.prestart[0].path", "hook", "hooks.prestart[0].path", "an absolute path"),
    ("hooks.poststop[0].path", DELETE, "hooks.poststop[0].path", "an absolute path"),
    ("hooks.prestart[0].args", [1], "hooks.prestart[0].args[0]", "a string"),
    ("hooks.prestart[0].env", "A=1", "hooks.prestart[0].env", "an array of strings"),
    ("hooks.createRuntime[0].timeout", 0, "hooks.createRuntime[0].timeout", "positive"),
    ("annotations", [], "annotations", "an object of strings"),
    ("annotations", {"a.b": 1}, "annotations['a.b']", "a string"),
]


@pytest.mark.parametrize(("edit", "value", "path", "expected"), CASES)
def test_config_rule(edit: str, value: Any, path: str, expected: str) -> None:
    check_rejection(edit, value, path, expected)


def test_first_error_wins() -> None:
    spec = edited(full_spec(), "hostname", 5)
    spec["linux"]["namespaces"] = "x"
    assert rejected(spec).path == "hostname"


def test_spec_error_message_without_path() -> None:
    assert str(SpecError("", "an object", "[]")) == "config.json: expected an object, got []"


def _paths(node: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [path]
    items: Any = ()
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    for key, child in items:
        found += _paths(child, (*path, key))
    return found


def test_any_wrong_value_anywhere_is_a_spec_error_or_accepted() -> None:
    """No replacement of any field of the full spec escapes as KeyError or TypeError."""
    spec = full_spec()
    for path in _paths(spec)[1:]:
        parent: Any = spec
        for key in path[:-1]:
            parent = parent[key]
        original = parent[path[-1]]
        values: list[Any] = [[], {}, "x", -1, True, None, 1.5, [1]]
        for value in values:
            parent[path[-1]] = value
            try:
                validate(spec)
            except SpecError as error:
                assert "\n" not in str(error)
        parent[path[-1]] = original
    assert spec == full_spec()
