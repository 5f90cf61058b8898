"""Capabilities turns the OCI ``process.capabilities`` object into the kernel's five sets.

Names are those of ``<linux/capability.h>`` (CAP_CHOWN = 0 ...
CAP_CHECKPOINT_RESTORE = 40). The sets are parsed in the caller, before
anything is forked, so a misspelt name fails ``create`` with a message
naming it; they are applied in the container process after the start
barrier, in the order the kernel's rules force:

1. drop from the bounding set (needs CAP_SETPCAP, so before anything else),
2. clear the ambient set,
3. PR_SET_KEEPCAPS around setuid so a non-root user keeps its permitted set
   (done by :mod:`process`, which owns the user switch),
4. capset(2) effective/permitted/inheritable,
5. raise ambient capabilities, which the kernel only allows for a
   capability that is both permitted and inheritable; others are left out
   silently, as runc does since 1.2 (its default spec lists ambient
   capabilities but no inheritable ones).
"""

from __future__ import annotations

from strongbox.container import _syscalls
from strongbox.container.errors import ContainerError

#: Capability names indexed by number.
NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

#: Capability numbers by name.
NUMBERS = {name: number for number, name in enumerate(NAMES)}

#: The highest capability this module knows; the kernel may know fewer.
LAST_CAP = len(NAMES) - 1

SET_NAMES = ("bounding", "effective", "permitted", "inheritable", "ambient")


def mask_of(names: list[str], which: str = "capabilities") -> int:
    """The bit mask of capability ``names``; an unknown name is a spec error naming it."""
    mask = 0
    unknown = []
    for name in names:
        number = NUMBERS.get(name.upper())
        if number is None:
            unknown.append(name)
        else:
            mask |= 1 << number
    if unknown:
        raise ContainerError("capabilities",
                             f"unknown capabilities in {which}: {', '.join(unknown)}")
    return mask


def names_of(mask: int) -> list[str]:
    """The names of the capabilities set in ``mask``, lowest number first."""
    return [name for number, name in enumerate(NAMES) if mask >> number & 1]


def read_last_cap(path: str = "/proc/sys/kernel/cap_last_cap") -> int:
    """The kernel's highest capability number (read in the caller: /proc is still its own)."""
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return LAST_CAP


class CapabilitySets:
    """The five capability sets as masks (a set the object leaves out is empty).

    A process spec without any ``capabilities`` object gets no instance at
    all and keeps what the launcher had (root's full sets). Masks are
    clipped to the kernel's ``last_cap`` so that a profile naming a
    capability this kernel does not have still works, like runc.
    """

    __slots__ = ("ambient", "bounding", "effective", "inheritable", "permitted")

    def __init__(self, *, bounding: int = 0, effective: int = 0, permitted: int = 0,
                 inheritable: int = 0, ambient: int = 0) -> None:
        self.bounding = bounding
        self.effective = effective
        self.permitted = permitted
        self.inheritable = inheritable
        self.ambient = ambient

    @classmethod
    def from_spec(cls, caps: dict[str, list[str]] | None, last_cap: int = LAST_CAP
                  ) -> CapabilitySets | None:
        """Parse ``process.capabilities``; ``None`` when the spec has none (keep as is)."""
        if caps is None:
            return None
        valid = (1 << (last_cap + 1)) - 1
        masks = {which: mask_of(caps.get(which) or [], which) & valid for which in SET_NAMES}
        return cls(**masks)

    def raisable_ambient(self) -> int:
        """The ambient capabilities the kernel will accept: also permitted and inheritable."""
        return self.ambient & self.permitted & self.inheritable

    def dropped_bounding(self, last_cap: int) -> list[int]:
        """Capability numbers to drop from the bounding set, up to the kernel's last one."""
        return [cap for cap in range(last_cap + 1) if not self.bounding >> cap & 1]


def drop_bounding(sets: CapabilitySets, last_cap: int) -> None:
    """Step 1: shrink the bounding set (before setuid: it needs CAP_SETPCAP)."""
    for cap in sets.dropped_bounding(last_cap):
        try:
            _syscalls.prctl(_syscalls.PR_CAPBSET_DROP, cap)
        except OSError as exc:
            raise ContainerError.from_os("capabilities", f"drop {NAMES[cap]} from bounding set",
                                         exc) from exc
    try:
        _syscalls.prctl(_syscalls.PR_CAP_AMBIENT, _syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as exc:
        raise ContainerError.from_os("capabilities", "clear ambient set", exc) from exc


def apply_sets(sets: CapabilitySets) -> None:
    """Steps 4 and 5: capset(2) the three thread sets, then raise the ambient ones."""
    try:
        _syscalls.capset(sets.effective, sets.permitted, sets.inheritable)
    except OSError as exc:
        raise ContainerError.from_os("capabilities", "capset", exc) from exc
    for cap in names_of(sets.raisable_ambient()):
        try:
            _syscalls.prctl(_syscalls.PR_CAP_AMBIENT, _syscalls.PR_CAP_AMBIENT_RAISE,
                            NUMBERS[cap])
        except OSError as exc:
            raise ContainerError.from_os("capabilities", f"raise ambient {cap}", exc) from exc
