"""Features is the runtime-spec ``features`` document: what this runtime implements.

Shape per the runtime-spec's features.md (features-linux.md for ``linux``).
Only what strongbox really applies inside the guest is listed: time
namespaces, AppArmor, SELinux and Intel RDT are absent; seccomp notify is
not supported. Every hook kind runs: startContainer in the guest's
container, the others on the host.
"""

from __future__ import annotations

from typing import Any

from strongbox.oci.names import CAPABILITIES, SECCOMP_OPERATORS

MOUNT_OPTIONS = (
    "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "mand",
    "noatime", "nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime",
    "nosuid", "private", "rbind", "relatime", "remount", "ro", "rprivate", "rshared",
    "rslave", "runbindable", "rw", "shared", "slave", "strictatime", "suid", "sync",
    "unbindable",
)
NAMESPACES = ("cgroup", "ipc", "mount", "network", "pid", "user", "uts")
SECCOMP_ACTIONS = ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                   "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP")
SECCOMP_ARCHES = ("SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32")
SECCOMP_FLAGS = ("SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                 "SECCOMP_FILTER_FLAG_TSYNC")


def features() -> dict[str, Any]:
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.1.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                  "poststop"],
        "mountOptions": list(MOUNT_OPTIONS),
        "linux": {
            "namespaces": list(NAMESPACES),
            "capabilities": list(CAPABILITIES),
            "cgroup": {"v1": False, "v2": True, "systemd": False, "systemdUser": False,
                       "rdma": False},
            "seccomp": {
                "enabled": True,
                "actions": list(SECCOMP_ACTIONS),
                "operators": list(SECCOMP_OPERATORS),
                "archs": list(SECCOMP_ARCHES),
                "knownFlags": list(SECCOMP_FLAGS),
                "supportedFlags": list(SECCOMP_FLAGS),
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {
            "io.github.strongbox.runtime": "microvm",
            "org.opencontainers.runc.checkpoint.enabled": "false",
        },
    }
