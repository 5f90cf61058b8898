"""The new mount API (Linux 5.2+/5.12+) through ctypes: detached mount trees.

open_tree(2) clones a mount tree into a file descriptor without attaching it
anywhere, and move_mount(2) attaches such a tree, even in another mount
namespace. That is how a host path reaches the export of a VM that is
already running: the tree is cloned in the host's namespace and attached
in QEMU's. mount_setattr(2) makes a detached tree read-only before anyone
can see it writable. x86-64 syscall numbers.
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
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def clone_tree(path: str, readonly: bool = False) -> int:
    """A detached recursive copy of the mounts at ``path``, as a file descriptor."""
    fd = _check(_libc.syscall(SYS_OPEN_TREE, AT_FDCWD, path.encode(),
                              OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE),
                f"open_tree {path}")
    if readonly:
        attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
        try:
            _check(_libc.syscall(SYS_MOUNT_SETATTR, fd, b"", AT_EMPTY_PATH | AT_RECURSIVE,
                                 ctypes.byref(attr), ctypes.sizeof(attr)),
                   f"mount_setattr {path}")
        except OSError:
            os.close(fd)
            raise
    return int(fd)


def attach_tree(fd: int, target: str) -> None:
    """Attach a detached tree at ``target`` (in the caller's mount namespace)."""
    _check(_libc.syscall(SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, target.encode(),
                         MOVE_MOUNT_F_EMPTY_PATH), f"move_mount {target}")
