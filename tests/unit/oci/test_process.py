"""config.md "Process": who runs what, with which capabilities and limits."""

from __future__ import annotations

from typing import Any

import pytest

from strongbox.oci.names import CAPABILITIES
from strongbox.oci.spec import validate
from tests.unit.oci.specs import DELETE, check_rejection, edited, full_spec, minimal_spec, rejected


def test_empty_args_message() -> None:
    error = rejected(edited(minimal_spec(), "process.args", []))
    assert str(error) == "config.json: process.args: expected a non-empty array of strings, got []"


def test_user_defaults_fill_in_additional_gids() -> None:
    spec = edited(minimal_spec(), "process.user", {"uid": 5, "gid": 6})
    assert validate(spec)["process"]["user"] == {"uid": 5, "gid": 6, "additionalGids": []}


def test_every_known_capability_is_accepted() -> None:
    spec = edited(minimal_spec(), "process.capabilities", {"bounding": list(CAPABILITIES)})
    assert validate(spec)["process"]["capabilities"]["bounding"][-1] == "CAP_CHECKPOINT_RESTORE"


def test_unknown_capability_is_named() -> None:
    error = rejected(edited(full_spec(), "process.capabilities.bounding[1]", "CAP_TELEPORT"))
    assert error.path == "process.capabilities.bounding[1]"
    assert error.got == "'CAP_TELEPORT'"
    assert "CAP_CHOWN..CAP_CHECKPOINT_RESTORE" in error.expected


@pytest.mark.parametrize(
    ("edit", "value"),
    [
        ("process.user.uid", True),
        ("process.user.gid", False),
        ("process.user.additionalGids", [True]),
        ("process.rlimits[0].soft", True),
        ("process.consoleSize.width", True),
        ("process.oomScoreAdj", False),
        ("linux.resources.memory.limit", True),
        ("linux.resources.cpu.shares", True),
        ("linux.seccomp.syscalls[1].args[0].index", False),
    ],
)
def test_booleans_are_not_integers(edit: str, value: bool) -> None:
    error = rejected(edited(full_spec(), edit, value))
    assert error.path.startswith(edit)
    assert error.got == ("true" if value else "false")


@pytest.mark.parametrize("value", [0.0, 1.0, 1.5, "1"])
def test_floats_and_strings_are_not_integers(value: object) -> None:
    error = rejected(edited(full_spec(), "process.user.uid", value))
    assert (error.path, error.expected) == ("process.user.uid", "a uint32")


CASES = [
    ("process", [], "process", "an object"),
    ("process.terminal", 1, "process.terminal", "a boolean"),
    ("process.consoleSize", [24, 80], "process.consoleSize", "an object"),
    ("process.consoleSize.height", -1, "process.consoleSize.height", "a uint32"),
    ("process.consoleSize.width", DELETE, "process.consoleSize.width", "a uint32"),
    ("process.user", 0, "process.user", "an object"),
    ("process.user.uid", -1, "process.user.uid", "a uint32"),
    ("process.user.uid", 2**32, "process.user.uid", "a uint32"),
    ("process.user.uid", DELETE, "process.user.uid", "a uint32"),
    ("process.user.gid", "0", "process.user.gid", "a uint32"),
    ("process.user.umask", "022", "process.user.umask", "a uint32"),
    ("process.user.additionalGids", 5, "process.user.additionalGids", "an array"),
    ("process.user.additionalGids[1]", "wheel", "process.user.additionalGids[1]", "a uint32"),
    ("process.user.username", 0, "process.user.username", "a string"),
    ("process.args", DELETE, "process.args", "a non-empty array of strings"),
    ("process.args", "sh", "process.args", "a non-empty array of strings"),
    ("process.args[0]", "", "process.args[0]", "a non-empty program name"),
    ("process.args[1]", 3, "process.args[1]", "a string"),
    ("process.env", "A=1", "process.env", "an array of strings"),
    ("process.env[0]", "PATH", "process.env[0]", "a 'KEY=value' string"),
    ("process.env[1]", "=value", "process.env[1]", "a 'KEY=value' string"),
    ("process.env[2]", None, "process.env[2]", "a string"),
    ("process.cwd", "srv", "process.cwd", "an absolute path"),
    ("process.cwd", 1, "process.cwd", "an absolute path"),
    ("process.capabilities", "ALL", "process.capabilities", "an object"),
    ("process.capabilities.ambient", "CAP_KILL", "process.capabilities.ambient", "an array"),
    ("process.capabilities.effective[0]", "kill", "process.capabilities.effective[0]",
     "like 'CAP_CHOWN'"),
    ("process.capabilities.effective[0]", "CAP_", "process.capabilities.effective[0]",
     "like 'CAP_CHOWN'"),
    ("process.capabilities.permitted[0]", "CAP_kill", "process.capabilities.permitted[0]",
     "like 'CAP_CHOWN'"),
    ("process.capabilities.inheritable", [7], "process.capabilities.inheritable[0]",
     "a string"),
    ("process.capabilities.bounding[0]", "CAP_FOO", "process.capabilities.bounding[0]",
     "known to Linux"),
    ("process.rlimits", {}, "process.rlimits", "an array of objects"),
    ("process.rlimits[0].type", "RLIMIT_FOO", "process.rlimits[0].type", "RLIMIT_* name"),
    ("process.rlimits[0].type", DELETE, "process.rlimits[0].type", "RLIMIT_* name"),
    ("process.rlimits[1].type", "RLIMIT_NOFILE", "process.rlimits[1].type", "not already listed"),
    ("process.rlimits[0].soft", 2048, "process.rlimits[0].soft", "at most hard (1024)"),
    ("process.rlimits[0].soft", DELETE, "process.rlimits[0].soft", "a uint64"),
    ("process.rlimits[0].hard", -1, "process.rlimits[0].hard", "a uint64"),
    ("process.rlimits[1].hard", 2**64, "process.rlimits[1].hard", "a uint64"),
    ("process.noNewPrivileges", "true", "process.noNewPrivileges", "a boolean"),
    ("process.oomScoreAdj", 1001, "process.oomScoreAdj", "-1000..1000"),
    ("process.oomScoreAdj", -1001, "process.oomScoreAdj", "-1000..1000"),
    ("process.apparmorProfile", 5, "process.apparmorProfile", "a string"),
    ("process.selinuxLabel", False, "process.selinuxLabel", "a string"),
]


@pytest.mark.parametrize(("edit", "value", "path", "expected"), CASES)
def test_process_rule(edit: str, value: Any, path: str, expected: str) -> None:
    check_rejection(edit, value, path, expected)
