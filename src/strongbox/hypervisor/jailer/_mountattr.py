"""mount_setattr(2) through ctypes (Linux 5.12+): mount flags set on a whole tree at once.

The old ``mount(MS_REMOUNT)`` changes one mount and replaces all of its
flags; ``mount_setattr`` with AT_RECURSIVE adds flags to a mount and every
mount below it, keeping the rest (a read-only share stays read-only).
x86-64 syscall number.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

_SYS_MOUNT_SETATTR = 442
_AT_FDCWD = -100
_AT_RECURSIVE = 0x8000
_AT_SYMLINK_NOFOLLOW = 0x100

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def set_tree_flags(path: str, flags: int) -> None:
    """Add MOUNT_ATTR_* ``flags`` to the mount at ``path`` and every mount below it."""
    attr = _MountAttr(flags, 0, 0, 0)
    result = _libc.syscall(ctypes.c_long(_SYS_MOUNT_SETATTR), ctypes.c_int(_AT_FDCWD),
                           path.encode(), ctypes.c_uint(_AT_RECURSIVE | _AT_SYMLINK_NOFOLLOW),
                           ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount_setattr {path}: {os.strerror(err)}", path)
