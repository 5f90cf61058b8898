"""Identity is who a jailed QEMU runs as: uid, gid, groups and capabilities.

Every sandbox gets its own unprivileged uid, derived from its id so that a
later cleanup (or an operator reading ``ps``) can recompute it: ``uid_base
+ sha256(id) mod UID_RANGE``; the gid is the same number. Two sandboxes may
share a uid by chance; that costs little, since each has its own chroot and
pid namespace (neither can name the other's files or processes).

QEMU keeps only the capabilities its 9p export needs with
``security_model=passthrough``, which stores guest ownership and modes as
real ones on the host: it creates a file, chowns it to the guest's uid
(CAP_CHOWN), then chmods a file it no longer owns (CAP_FOWNER) without the
kernel stripping set-gid bits (CAP_FSETID); it reads and writes root-owned
files of the container's root filesystem (CAP_DAC_OVERRIDE). Found by
dropping each in turn: without any of the first three the agent cannot even
make a container's mount points, without CAP_FSETID ``chmod 2755`` loses
its set-gid bit. CAP_MKNOD is left out on purpose: with it and
CAP_DAC_OVERRIDE a compromised QEMU could make, then open, a node of the
host's disk in a writable share; a guest ``mknod`` of a device node gets
EPERM instead (as in a rootless container). They are raised as inheritable
and ambient so that they survive ``execve`` by a non-root uid; the
bounding set is cut to the same four, so nothing can ever be regained.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

#: How many uids sandboxes are spread over, from ``uid_base``.
UID_RANGE = 65536
#: The largest valid uid is 2**32 - 2 ((uid_t)-1 means "no change").
UID_MAX = 2**32 - 2

CAP_CHOWN = 0
CAP_DAC_OVERRIDE = 1
CAP_FOWNER = 3
CAP_FSETID = 4
#: What QEMU keeps, by number (see the module docstring for why each).
QEMU_CAPABILITIES = (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID)


def capability_mask(numbers: tuple[int, ...] = QEMU_CAPABILITIES) -> int:
    mask = 0
    for number in numbers:
        mask |= 1 << number
    return mask


def capabilities_to_drop(keep: int, last_cap: int) -> list[int]:
    """Bounding-set entries to drop: every capability the kernel knows except ``keep``."""
    return [n for n in range(last_cap + 1) if not keep >> n & 1]


def read_last_cap(path: str = "/proc/sys/kernel/cap_last_cap") -> int:
    with open(path) as f:
        return int(f.read().strip())


def uid_for(sandbox_id: str, uid_base: int) -> int:
    """The sandbox's uid: stable for an id, in ``[uid_base, uid_base + UID_RANGE)``."""
    digest = hashlib.sha256(sandbox_id.encode()).digest()
    return uid_base + int.from_bytes(digest[:8], "big") % UID_RANGE


@dataclass(frozen=True)
class Identity:
    """The credentials QEMU execs with."""

    uid: int
    gid: int
    #: Supplementary groups: only /dev/kvm's group, and only when KVM is used.
    groups: tuple[int, ...]
    capabilities: int

    @classmethod
    def for_sandbox(cls, sandbox_id: str, uid_base: int, kvm_device: str | None) -> Identity:
        uid = uid_for(sandbox_id, uid_base)
        groups: tuple[int, ...] = ()
        if kvm_device is not None:
            gid = os.stat(kvm_device).st_gid
            groups = (gid,) if gid != 0 else ()  # never the root group
        return cls(uid, uid, groups, capability_mask())
