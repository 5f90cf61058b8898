"""Hostpath resolves host paths that someone else may have shaped, without being led astray.

Strongbox hands host directories to a guest: a container's root filesystem
and the sources of its bind mounts, mounted into the VM's 9p export. Two
parties can plant symlinks on those paths: the bundle's author (a rootfs
that is a symlink to ``/`` would hand the guest the host's root read-write)
and the guest itself, which can write into the export through 9p (a mount
point swapped for a symlink would send a later mount anywhere on the host).
And any check by name is undone by a swap between the check and the use.

So every such path is resolved once, by ``openat2(2)``, into an ``O_PATH``
descriptor, and the mount is made from that descriptor (``open_tree`` with
``AT_EMPTY_PATH``, :mod:`strongbox.mountapi`), never from the name again:

* :func:`open_exact`: no symlink anywhere in the path (``RESOLVE_NO_SYMLINKS``):
  the rootfs, which runc refuses when it is, or goes through, a symlink;
* :func:`open_source`: ordinary symlinks followed, as runc follows them in a
  bind mount's source (the bundle author names the source: a symlink gives
  nothing a plain path would not), but no ``/proc`` magic links
  (``RESOLVE_NO_MAGICLINKS``: no way into another process's root or fds);
* :func:`open_beneath` / :func:`make_beneath`: a path inside a directory the
  guest can write (the export), with no symlink and no ``..`` leaving it
  (``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS``), creating what is missing.

Host side only (ctypes; x86-64 syscall number).
"""

from __future__ import annotations

import ctypes
import errno
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

SYS_OPENAT2 = 437
AT_FDCWD = -100
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): a descriptor for ``path``, resolved under the ``RESOLVE_*`` rules.

    Raises OSError (ELOOP for a forbidden symlink, EXDEV for an escape).
    """
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fd = _libc.syscall(ctypes.c_long(SYS_OPENAT2), ctypes.c_int(dirfd), os.fsencode(path),
                       ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int(fd)


def open_exact(path: str) -> int:
    """An ``O_PATH`` descriptor of absolute ``path``, which must not be or pass a symlink."""
    return openat2(AT_FDCWD, path, os.O_PATH, RESOLVE_NO_SYMLINKS)


def open_source(path: str) -> int:
    """An ``O_PATH`` descriptor of absolute ``path``, following symlinks but no magic links."""
    return openat2(AT_FDCWD, path, os.O_PATH, RESOLVE_NO_MAGICLINKS)


def is_symlink_error(exc: OSError) -> bool:
    """True when a resolution failed on a forbidden symlink or an escape, not a missing file."""
    return exc.errno in (errno.ELOOP, errno.EXDEV)


_BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS


def open_beneath(root: str, relative: str) -> int:
    """An ``O_PATH`` descriptor of ``root/relative`` that never left ``root`` on the way."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return openat2(root_fd, relative, os.O_PATH, _BENEATH)
    finally:
        os.close(root_fd)


def make_beneath(root: str, relative: str, *, directory: bool) -> None:
    """Create ``root/relative`` (a directory, or an empty file) and its parents, beneath ``root``.

    Each component is opened with no symlink followed, so a symlink the
    guest planted anywhere on the way fails the call (ELOOP) instead of
    creating something elsewhere. What exists already is kept.
    """
    parts = [p for p in relative.split("/") if p]
    if not parts or ".." in parts:
        raise OSError(errno.EINVAL, "not a path beneath the root", relative)
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, name in enumerate(parts):
            last = index == len(parts) - 1
            if last and not directory:
                try:
                    leaf = openat2(fd, name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, _BENEATH,
                                   0o644)
                except FileExistsError:  # only a mount point: never opened for I/O
                    leaf = openat2(fd, name, os.O_PATH, _BENEATH)
                os.close(leaf)
                return
            try:
                os.mkdir(name, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            child = openat2(fd, name, os.O_PATH | os.O_DIRECTORY, _BENEATH)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
