"""The new mount API (Linux 5.2+/5.12+) through ctypes: whole trees, detached trees.

mount_setattr(2) with AT_RECURSIVE adds flags to a mount and every mount
below it, keeping the rest (a read-only share stays read-only), where
``mount(MS_REMOUNT)`` changes one mount and replaces all its flags.
open_tree(2) clones a mount tree into a file descriptor without attaching
it anywhere, and move_mount(2) attaches such a tree, even in another mount
namespace: that is how a host path reaches the export of a VM that is
already running (cloned in the host's namespace, attached in QEMU's), with
its flags set before anyone can see it. x86-64 syscall numbers.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _check(result: int, what: str, path: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} {path}: {os.strerror(err)}", path)
    return result


def _setattr(dirfd: int, path: bytes, at_flags: int, flags: int, shown: str) -> None:
    attr = _MountAttr(flags, 0, 0, 0)
    _check(_libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(dirfd), path,
                         ctypes.c_uint(at_flags | AT_RECURSIVE), ctypes.byref(attr),
                         ctypes.c_size_t(ctypes.sizeof(attr))), "mount_setattr", shown)


def set_tree_flags(path: str, flags: int) -> None:
    """Add MOUNT_ATTR_* ``flags`` to the mount at ``path`` and every mount below it."""
    _setattr(AT_FDCWD, path.encode(), AT_SYMLINK_NOFOLLOW, flags, path)


def clone_tree_at(fd: int, flags: int = 0, shown: str = "") -> int:
    """A detached recursive copy of the mounts at ``fd`` (an ``O_PATH`` descriptor),
    carrying MOUNT_ATTR_* ``flags``.

    The path was resolved once, when ``fd`` was opened (:mod:`strongbox.hostpath`):
    nothing renamed or swapped since can change what gets mounted.
    """
    tree = _check(_libc.syscall(SYS_OPEN_TREE, fd, b"", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
                                | AT_RECURSIVE | AT_EMPTY_PATH), "open_tree", shown)
    if flags:
        try:
            _setattr(tree, b"", AT_EMPTY_PATH, flags, shown)
        except OSError:
            os.close(tree)
            raise
    return int(tree)


def probe() -> None:
    """Raise OSError if this kernel lacks the new mount API (open_tree on ``/``, no clone:
    nothing is made)."""
    os.close(_check(_libc.syscall(SYS_OPEN_TREE, AT_FDCWD, b"/", OPEN_TREE_CLOEXEC),
                    "open_tree", "/"))


def attach_tree_at(fd: int, target_fd: int, shown: str = "") -> None:
    """Attach a detached tree on the mount point ``target_fd`` (an ``O_PATH`` descriptor)."""
    _check(_libc.syscall(SYS_MOVE_MOUNT, fd, b"", target_fd, b"",
                         MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH), "move_mount", shown)
