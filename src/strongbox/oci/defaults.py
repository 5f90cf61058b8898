"""Defaults are the starting config.json a user edits: what `runc spec` writes, for strongbox.

The content follows runc's example spec closely, so that tutorials and scripts
written for `runc spec` work unchanged: a shell on a terminal, a read-only rootfs,
three capabilities, 1024 open files, the standard /proc, /dev and /sys mounts, the
paths runc masks or makes read-only, and a device cgroup that denies everything
(config.md, config-linux.md). Two deliberate differences:

* the hostname is "strongbox" rather than "runc", so a shell prompt says which
  runtime it is in;
* the cgroup namespace is always listed: runc adds it only on cgroup v2 hosts, and
  the strongbox guest always runs cgroup v2, whatever the host does.

``rootless=True`` is `runc spec --rootless`: a user namespace mapping root in the
container to the caller, no network namespace (an unprivileged user cannot set one
up with a device in it), /sys bind-mounted rather than a new sysfs (which needs
privilege over the network namespace), no uid=/gid= mount options (those ids are not
mapped) and no resource limits (an unprivileged user cannot set cgroup limits).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # `typing` is too slow to import in the guest; checkers treat this as True
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.0.2"
"""The runtime-spec version written, as `runc spec` writes it."""

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_CAPABILITIES = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

_MASKED_PATHS = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
]

_READONLY_PATHS = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]

_NOSUID_NOEXEC_NODEV = ["nosuid", "noexec", "nodev"]


def _mount(destination: str, fstype: str, source: str, options: list[str]) -> dict[str, Any]:
    return {"destination": destination, "type": fstype, "source": source, "options": options}


def _mounts() -> list[dict[str, Any]]:
    """config.md "Mounts": the filesystems every Linux container expects to find."""
    return [
        _mount("/proc", "proc", "proc", []),
        _mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        _mount(
            "/dev/pts",
            "devpts",
            "devpts",
            ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        _mount("/dev/shm", "tmpfs", "shm", [*_NOSUID_NOEXEC_NODEV, "mode=1777", "size=65536k"]),
        _mount("/dev/mqueue", "mqueue", "mqueue", [*_NOSUID_NOEXEC_NODEV]),
        _mount("/sys", "sysfs", "sysfs", [*_NOSUID_NOEXEC_NODEV, "ro"]),
        _mount("/sys/fs/cgroup", "cgroup", "cgroup", [*_NOSUID_NOEXEC_NODEV, "relatime", "ro"]),
    ]


def default_spec(*, rootless: bool = False) -> dict[str, Any]:
    """Return a new default config.json document (a fresh dict each call).

    The result passes ``spec.validate()``; it is written as `runc spec` writes it,
    not normalized, so the file a user opens stays short.
    """
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [f"PATH={DEFAULT_PATH}", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                kind: list(_CAPABILITIES)
                for kind in ("bounding", "effective", "permitted", "ambient")
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "strongbox",
        "mounts": _mounts(),
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [
                {"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount", "cgroup")
            ],
            "maskedPaths": list(_MASKED_PATHS),
            "readonlyPaths": list(_READONLY_PATHS),
        },
    }
    if rootless:
        _make_rootless(spec)
    return spec


def _make_rootless(spec: dict[str, Any]) -> None:
    """Adapt a default spec for an unprivileged caller, as `runc spec --rootless` does."""
    linux = spec["linux"]
    linux["namespaces"] = [
        entry for entry in linux["namespaces"] if entry["type"] not in ("network", "user")
    ] + [{"type": "user"}]
    linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    del linux["resources"]
    mounts = []
    for mount in spec["mounts"]:
        if mount["destination"] == "/sys":
            mount = _mount("/sys", "none", "/sys", ["rbind", *_NOSUID_NOEXEC_NODEV, "ro"])
        else:
            mount["options"] = [
                option for option in mount["options"] if not option.startswith(("uid=", "gid="))
            ]
        mounts.append(mount)
    spec["mounts"] = mounts
