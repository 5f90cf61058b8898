"""OCI bundles for tests: a busybox root filesystem and a runc-style config.json.

The root filesystem is built from Debian's ``busybox-static`` (no registry,
no network): ``/bin/busybox`` plus a symlink per applet, the usual empty
directories, and minimal ``/etc/passwd`` and ``/etc/group``. The config is
what ``runc spec`` writes, with the fields a test changes passed as keyword
arguments.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

BUSYBOX = Path("/bin/busybox")

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
          "user:x:1000:1000:user:/home/user:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = "root:x:0:\ndaemon:x:1:\ntty:x:5:\nusers:x:100:\nuser:x:1000:\nnogroup:x:65534:\n"

#: runc's default capability set (runc spec).
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

DEFAULT_SPEC: dict[str, Any] = {
    "ociVersion": "1.0.2",
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"],
        "cwd": "/",
        "capabilities": {k: list(DEFAULT_CAPS) for k in
                         ("bounding", "effective", "permitted", "ambient")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "runc",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                        "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                          "/proc/sysrq-trigger"],
    },
}


def busybox_applets() -> list[str]:
    out = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    return sorted(set(out.stdout.split()))


def make_rootfs(path: Path) -> Path:
    """A busybox root filesystem at ``path``."""
    for d in ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "home/user", "var", "run",
              "usr/bin", "sbin"):
        (path / d).mkdir(parents=True, exist_ok=True)
    (path / "tmp").chmod(0o1777)
    shutil.copy2(BUSYBOX, path / "bin" / "busybox")
    for applet in busybox_applets():
        link = path / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (path / "etc" / "passwd").write_text(PASSWD)
    (path / "etc" / "group").write_text(GROUP)
    (path / "etc" / "hostname").write_text("busybox\n")
    return path


def make_bundle(path: Path, args: list[str] | None = None, *, rootfs: Path | None = None,
                **changes: Any) -> Path:
    """A bundle directory with ``config.json``; ``changes`` are applied with :func:`set_path`.

    Keys are dotted paths into the spec, e.g. ``root__readonly=False`` or
    ``process__env=[...]`` (double underscore for a dot).
    """
    path.mkdir(parents=True, exist_ok=True)
    if rootfs is None:
        make_rootfs(path / "rootfs")
    spec = copy.deepcopy(DEFAULT_SPEC)
    if rootfs is not None:
        spec["root"]["path"] = str(rootfs)
    if args is not None:
        spec["process"]["args"] = args
    for key, value in changes.items():
        set_path(spec, key.split("__"), value)
    write_spec(path, spec)
    return path


def set_path(spec: dict[str, Any], keys: list[str], value: Any) -> None:
    node = spec
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def read_spec(bundle: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    return data


def write_spec(bundle: Path, spec: dict[str, Any]) -> None:
    (bundle / "config.json").write_text(json.dumps(spec, indent=2))
