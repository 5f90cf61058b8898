"""Mount options split an OCI ``mounts[].options`` list into mount(2) flags, propagation and data.

The options are fstab's words. Those the kernel takes as MS_* flags are
collected in order (a later ``rw`` undoes an earlier ``ro``); propagation
words (``rprivate``, ``shared``...) need separate mount(2) calls after the
mount exists; everything else (``mode=755``, ``size=65536k``, ``newinstance``)
is file-system data passed through as one comma-separated string.
"""

from __future__ import annotations

from strongbox.container import _syscalls as sc
from strongbox.container.errors import ContainerError

#: option -> (clear instead of set, MS_* flag)
FLAGS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, sc.MS_RDONLY),
    "rw": (True, sc.MS_RDONLY),
    "nosuid": (False, sc.MS_NOSUID),
    "suid": (True, sc.MS_NOSUID),
    "nodev": (False, sc.MS_NODEV),
    "dev": (True, sc.MS_NODEV),
    "noexec": (False, sc.MS_NOEXEC),
    "exec": (True, sc.MS_NOEXEC),
    "sync": (False, sc.MS_SYNCHRONOUS),
    "async": (True, sc.MS_SYNCHRONOUS),
    "dirsync": (False, sc.MS_DIRSYNC),
    "remount": (False, sc.MS_REMOUNT),
    "mand": (False, sc.MS_MANDLOCK),
    "nomand": (True, sc.MS_MANDLOCK),
    "atime": (True, sc.MS_NOATIME),
    "noatime": (False, sc.MS_NOATIME),
    "diratime": (True, sc.MS_NODIRATIME),
    "nodiratime": (False, sc.MS_NODIRATIME),
    "bind": (False, sc.MS_BIND),
    "rbind": (False, sc.MS_BIND | sc.MS_REC),
    "relatime": (False, sc.MS_RELATIME),
    "norelatime": (True, sc.MS_RELATIME),
    "strictatime": (False, sc.MS_STRICTATIME),
    "nostrictatime": (True, sc.MS_STRICTATIME),
    "iversion": (False, sc.MS_I_VERSION),
    "noiversion": (True, sc.MS_I_VERSION),
    "lazytime": (False, sc.MS_LAZYTIME),
    "nolazytime": (True, sc.MS_LAZYTIME),
    "silent": (False, sc.MS_SILENT),
    "loud": (True, sc.MS_SILENT),
}

#: propagation option -> flags for a separate mount(NULL, target, NULL, flags) call
PROPAGATION: dict[str, int] = {
    "private": sc.MS_PRIVATE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}

#: runc extensions that are neither flags nor data; accepted and not acted upon.
IGNORED = frozenset({"tmpcopyup"})

#: The flags a bind remount can change; what statvfs(2) reports uses the same bits.
REMOUNT_FLAGS = (sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_SYNCHRONOUS
                 | sc.MS_MANDLOCK | sc.MS_NOATIME | sc.MS_NODIRATIME | sc.MS_RELATIME)


class MountOptions:
    """Parsed options: ``flags`` for mount(2), ``propagation`` calls, fs ``data``."""

    __slots__ = ("data", "flags", "propagation")

    def __init__(self, flags: int = 0, propagation: list[int] | None = None,
                 data: str = "") -> None:
        self.flags = flags
        self.propagation = propagation or []
        self.data = data

    @classmethod
    def parse(cls, options: list[str]) -> MountOptions:
        flags = 0
        propagation = []
        data = []
        for option in options:
            if option in FLAGS:
                clear, flag = FLAGS[option]
                flags = flags & ~flag if clear else flags | flag
            elif option in PROPAGATION:
                propagation.append(PROPAGATION[option])
            elif option not in IGNORED:
                data.append(option)
        return cls(flags, propagation, ",".join(data))

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & sc.MS_BIND)

    def __repr__(self) -> str:
        return f"MountOptions({self.flags:#x}, {self.propagation!r}, {self.data!r})"


def root_propagation(name: str | None) -> int:
    """``linux.rootfsPropagation`` as flags for "/"; recursive private when unset."""
    if not name:
        return sc.MS_PRIVATE | sc.MS_REC
    flags = PROPAGATION.get(name)
    if flags is None:
        raise ContainerError("mount", f"unknown rootfsPropagation {name!r}")
    return flags
