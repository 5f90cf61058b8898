"""config-linux.md: namespaces, mappings, devices, sysctl, seccomp and paths."""

from __future__ import annotations

from typing import Any

import pytest

from strongbox.oci.spec import validate
from tests.unit.oci.specs import DELETE, check_rejection, edited, full_spec, minimal_spec, rejected


def test_misspelled_namespace_message() -> None:
    error = rejected(edited(full_spec(), "linux.namespaces[1].type", "netwrk"))
    assert str(error) == (
        "config.json: linux.namespaces[1].type: expected one of cgroup, ipc, mount, network, "
        "pid, time, user, uts, got 'netwrk'"
    )


def test_fifo_device_needs_no_numbers() -> None:
    spec = edited(minimal_spec(), "linux.devices", [{"type": "p", "path": "/dev/fifo"}])
    assert validate(spec)["linux"]["devices"] == [{"type": "p", "path": "/dev/fifo"}]


def test_empty_linux_object_is_filled_in() -> None:
    linux = validate(edited(minimal_spec(), "linux", {}))["linux"]
    assert linux == {
        "namespaces": [],
        "resources": {},
        "sysctl": {},
        "maskedPaths": [],
        "readonlyPaths": [],
    }


CASES = [
    ("linux", [], "linux", "an object"),
    ("linux.namespaces", {"pid": {}}, "linux.namespaces", "an array of objects"),
    ("linux.namespaces[0]", "pid", "linux.namespaces[0]", "an object"),
    ("linux.namespaces[0].type", DELETE, "linux.namespaces[0].type", "one of cgroup, ipc"),
    ("linux.namespaces[0].type", "PID", "linux.namespaces[0].type", "one of cgroup, ipc"),
    ("linux.namespaces[1].path", "netns/box", "linux.namespaces[1].path", "an absolute path"),
    ("linux.namespaces[2].type", "pid", "linux.namespaces[2].type", "not already listed"),
    ("linux.uidMappings", {}, "linux.uidMappings", "an array of objects"),
    ("linux.uidMappings[0].hostID", -1, "linux.uidMappings[0].hostID", "a uint32"),
    ("linux.gidMappings[0].containerID", DELETE, "linux.gidMappings[0].containerID",
     "a uint32"),
    ("linux.gidMappings[0].size", 2**32, "linux.gidMappings[0].size", "a uint32"),
    ("linux.uidMappings", DELETE, "linux.uidMappings", "mappings for the new user namespace"),
    ("linux.gidMappings", [], "linux.gidMappings", "mappings for the new user namespace"),
    ("linux.namespaces", [{"type": "mount"}], "linux.uidMappings",
     "no mappings, as linux.namespaces lists no user namespace"),
    ("linux.devices[0].type", "x", "linux.devices[0].type", "one of b, c, p, u"),
    ("linux.devices[0].path", "dev/fuse", "linux.devices[0].path", "an absolute path"),
    ("linux.devices[0].major", DELETE, "linux.devices[0].major", "an int64"),
    ("linux.devices[0].minor", "229", "linux.devices[0].minor", "an int64"),
    ("linux.devices[0].fileMode", "0666", "linux.devices[0].fileMode", "a uint32"),
    ("linux.devices[0].uid", -1, "linux.devices[0].uid", "a uint32"),
    ("linux.cgroupsPath", 5, "linux.cgroupsPath", "a string"),
    ("linux.sysctl", ["net.ipv4.ip_forward=1"], "linux.sysctl", "an object of strings"),
    ("linux.sysctl", {"net.ipv4.ip_forward": 1}, "linux.sysctl['net.ipv4.ip_forward']",
     "a string"),
    ("linux.seccomp", "default", "linux.seccomp", "an object"),
    ("linux.seccomp.defaultAction", DELETE, "linux.seccomp.defaultAction", "SCMP_ACT_ALLOW"),
    ("linux.seccomp.defaultAction", "SCMP_ACT_DENY", "linux.seccomp.defaultAction",
     "one of SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL"),
    ("linux.seccomp.defaultErrnoRet", -1, "linux.seccomp.defaultErrnoRet", "a uint32"),
    ("linux.seccomp.architectures[1]", "x86", "linux.seccomp.architectures[1]",
     "SCMP_ARCH_* architecture"),
    ("linux.seccomp.architectures", "SCMP_ARCH_X86", "linux.seccomp.architectures",
     "an array of strings"),
    ("linux.seccomp.flags[0]", "SECCOMP_FILTER_FLAG_BOGUS", "linux.seccomp.flags[0]",
     "SECCOMP_FILTER_FLAG_LOG"),
    ("linux.seccomp.listenerPath", 5, "linux.seccomp.listenerPath", "a string"),
    ("linux.seccomp.listenerMetadata", {}, "linux.seccomp.listenerMetadata", "a string"),
    ("linux.seccomp.syscalls", {}, "linux.seccomp.syscalls", "an array of objects"),
    ("linux.seccomp.syscalls[0].names", [], "linux.seccomp.syscalls[0].names",
     "a non-empty array of strings"),
    ("linux.seccomp.syscalls[0].names", DELETE, "linux.seccomp.syscalls[0].names",
     "a non-empty array of strings"),
    ("linux.seccomp.syscalls[0].names[1]", 1, "linux.seccomp.syscalls[0].names[1]",
     "a string"),
    ("linux.seccomp.syscalls[0].action", DELETE, "linux.seccomp.syscalls[0].action",
     "one of SCMP_ACT_ALLOW"),
    ("linux.seccomp.syscalls[2].errnoRet", 1.5, "linux.seccomp.syscalls[2].errnoRet",
     "a uint32"),
    ("linux.seccomp.syscalls[1].args[0].index", 6, "linux.seccomp.syscalls[1].args[0].index",
     "an argument index in 0..5"),
    ("linux.seccomp.syscalls[1].args[0].index", DELETE,
     "linux.seccomp.syscalls[1].args[0].index", "an argument index in 0..5"),
    ("linux.seccomp.syscalls[1].args[0].value", -1, "linux.seccomp.syscalls[1].args[0].value",
     "a uint64"),
    ("linux.seccomp.syscalls[1].args[1].valueTwo", 2**64,
     "linux.seccomp.syscalls[1].args[1].valueTwo", "a uint64"),
    ("linux.seccomp.syscalls[1].args[0].op", "EQ", "linux.seccomp.syscalls[1].args[0].op",
     "one of SCMP_CMP_EQ"),
    ("linux.rootfsPropagation", "rprivat", "linux.rootfsPropagation", "one of private, rprivate"),
    ("linux.maskedPaths[0]", "proc/kcore", "linux.maskedPaths[0]", "an absolute path"),
    ("linux.readonlyPaths", "/proc/sys", "linux.readonlyPaths", "an array of strings"),
    ("linux.readonlyPaths[0]", 5, "linux.readonlyPaths[0]", "a string"),
    ("linux.mountLabel", 5, "linux.mountLabel", "a string"),
    ("linux.intelRdt", "x", "linux.intelRdt", "an object"),
    ("linux.personality", [], "linux.personality", "an object"),
]


@pytest.mark.parametrize(("edit", "value", "path", "expected"), CASES)
def test_linux_rule(edit: str, value: Any, path: str, expected: str) -> None:
    check_rejection(edit, value, path, expected)
