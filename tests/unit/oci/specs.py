"""Spec documents for the oci tests: a full valid config.json, a minimal one, and edits."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from strongbox.oci.spec import SpecError, validate

DELETE: Any = object()
"""Value for edited(): remove the key (or array item) instead of setting it."""


def minimal_spec() -> dict[str, Any]:
    """The smallest document validate() accepts with a process."""
    return {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"]}}


def full_spec() -> dict[str, Any]:
    """Every field validate() knows, valid and already in normalized form.

    Every default is spelled out, so validate() must return it unchanged.
    """
    return {
        "ociVersion": "1.1.0",
        "root": {"path": "rootfs", "readonly": True},
        "process": {
            "terminal": True,
            "consoleSize": {"height": 24, "width": 80},
            "user": {
                "uid": 1000,
                "gid": 1000,
                "umask": 0o022,
                "additionalGids": [5, 100],
                "username": "app",
            },
            "args": ["/bin/sh", "-c", "echo hi"],
            "env": ["PATH=/usr/bin:/bin", "EMPTY=", "WITH_EQUALS=a=b"],
            "cwd": "/srv",
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_CHECKPOINT_RESTORE"],
                "effective": ["CAP_KILL"],
                "inheritable": [],
                "permitted": ["CAP_KILL"],
                "ambient": [],
            },
            "rlimits": [
                {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024},
                {"type": "RLIMIT_CORE", "hard": 2**64 - 1, "soft": 0},
            ],
            "noNewPrivileges": True,
            "oomScoreAdj": -1000,
            "apparmorProfile": "",
            "selinuxLabel": "",
            "ioPriority": {"class": "IOPRIO_CLASS_IDLE"},  # unknown to us: kept
        },
        "hostname": "box",
        "domainname": "example.org",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": []},
            {
                "destination": "/data",
                "type": "bind",
                "source": "/srv/data",
                "options": ["rbind", "ro"],
                "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            },
        ],
        "hooks": {
            "prestart": [{"path": "/usr/bin/hook", "args": ["hook", "pre"], "env": ["A=1"]}],
            "createRuntime": [{"path": "/usr/bin/hook", "timeout": 5}],
            "createContainer": [],
            "startContainer": [],
            "poststart": [],
            "poststop": [{"path": "/usr/bin/cleanup"}],
        },
        "annotations": {"org.opencontainers.image.ref.name": "latest"},
        "linux": {
            "namespaces": [
                {"type": "pid"},
                {"type": "network", "path": "/var/run/netns/box"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
                {"type": "cgroup"},
                {"type": "user"},
                {"type": "time"},
            ],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "devices": [
                {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229,
                 "fileMode": 0o666, "uid": 0, "gid": 0},
                {"type": "p", "path": "/dev/myfifo"},
            ],
            "resources": {
                "devices": [
                    {"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
                ],
                "memory": {
                    "limit": 536870912,
                    "reservation": 268435456,
                    "swap": -1,
                    "kernel": -1,
                    "kernelTCP": -1,
                    "swappiness": 0,
                    "disableOOMKiller": False,
                    "useHierarchy": True,
                    "checkBeforeUpdate": False,
                },
                "cpu": {
                    "shares": 1024,
                    "quota": 200000,
                    "burst": 0,
                    "period": 100000,
                    "realtimeRuntime": 0,
                    "realtimePeriod": 0,
                    "cpus": "0-3,5",
                    "mems": "0",
                    "idle": 0,
                },
                "pids": {"limit": -1},
                "blockIO": {
                    "weight": 500,
                    "leafWeight": 300,
                    "weightDevice": [{"major": 8, "minor": 0, "weight": 500}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                    "throttleWriteBpsDevice": [],
                    "throttleReadIOPSDevice": [],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
                },
                "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}],
                "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
                "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
                "unified": {"memory.high": "max"},
            },
            "cgroupsPath": "/strongbox/box",
            "sysctl": {"net.ipv4.ip_forward": "1"},
            "seccomp": {
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                "listenerPath": "/run/seccomp.sock",
                "listenerMetadata": "meta",
                "syscalls": [
                    {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                    {
                        "names": ["personality"],
                        "action": "SCMP_ACT_ALLOW",
                        "args": [
                            {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                            {"index": 5, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"},
                        ],
                    },
                    {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                ],
            },
            "rootfsPropagation": "rslave",
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"],
            "mountLabel": "",
            "intelRdt": {"closID": "guaranteed_group"},
            "personality": {"domain": "LINUX"},
            "timeOffsets": {"monotonic": {"secs": 1}},  # unknown to us: kept
        },
        "vm": {"hypervisor": {"path": "/usr/bin/qemu"}},  # unknown to us: kept
    }


_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def edited(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``spec`` with the value at ``path`` ("linux.namespaces[1].type") set.

    Missing intermediate objects are created; DELETE removes the key or item.
    """
    result = copy.deepcopy(spec)
    keys: list[str | int] = [
        name if name else int(index) for name, index in _TOKEN.findall(path)
    ]
    node: Any = result
    for key in keys[:-1]:
        if isinstance(key, str) and key not in node:
            node[key] = {}
        node = node[key]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return result


def rejected(spec: object, *, require_process: bool = True) -> SpecError:
    """Validate ``spec``, which must fail; check the message shape and return the error."""
    with pytest.raises(SpecError) as info:
        validate(spec, require_process=require_process)
    error = info.value
    where = f"{error.path}: " if error.path else ""
    assert str(error) == f"config.json: {where}expected {error.expected}, got {error.got}"
    assert "\n" not in str(error)
    return error


def check_rejection(edit_path: str, value: Any, error_path: str, expected: str) -> None:
    """Edit the full spec at ``edit_path`` and assert the error's path and expectation."""
    error = rejected(edited(full_spec(), edit_path, value))
    assert error.path == error_path
    assert expected in error.expected, str(error)
