"""Devices populates the container's /dev: the standard nodes, spec devices, links, console.

runc gives every container the same minimal set (null, zero, full, random,
urandom, tty) plus the spec's ``linux.devices``, and the conventional
symlinks (fd, stdin/stdout/stderr, ptmx into the container's own devpts,
core). Nodes are made with mknod(2) by the container's root. Where mknod is
refused (a user namespace, a nodev or foreign file system) the caller's
node is bind-mounted instead, as runc does; it then keeps the guest's
owner (``nobody`` in a user namespace that does not map it).
"""

from __future__ import annotations

import os
import stat

from strongbox.container import _syscalls as sc
from strongbox.container import paths
from strongbox.container.errors import ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_KINDS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


class Device:
    """A device node to create: path inside the container, kind, numbers, owner, mode."""

    __slots__ = ("gid", "kind", "major", "minor", "mode", "path", "uid")

    def __init__(self, path: str, kind: int, major: int, minor: int, mode: int = 0o666,
                 uid: int = 0, gid: int = 0) -> None:
        self.path = path
        self.kind = kind
        self.major = major
        self.minor = minor
        self.mode = mode
        self.uid = uid
        self.gid = gid

    @classmethod
    def from_spec(cls, entry: dict[str, Any]) -> Device:
        kind = _KINDS.get(entry.get("type", ""))
        path = entry.get("path") or ""
        if kind is None or not path.startswith("/"):
            raise ContainerError("device", f"invalid device {path or '?'}: type "
                                 f"{entry.get('type')!r} (want c, b, u or p) and an absolute path")
        mode = entry.get("fileMode")
        return cls(path, kind, int(entry.get("major", 0)), int(entry.get("minor", 0)),
                   0o666 if mode is None else int(mode) & 0o7777,
                   int(entry.get("uid", 0)), int(entry.get("gid", 0)))


DEFAULT_DEVICES = (
    Device("/dev/null", stat.S_IFCHR, 1, 3),
    Device("/dev/zero", stat.S_IFCHR, 1, 5),
    Device("/dev/full", stat.S_IFCHR, 1, 7),
    Device("/dev/random", stat.S_IFCHR, 1, 8),
    Device("/dev/urandom", stat.S_IFCHR, 1, 9),
    Device("/dev/tty", stat.S_IFCHR, 5, 0),
)

#: (link target, link path)
DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)


def create_device(rootfs: str, device: Device) -> None:
    """mknod ``device`` under ``rootfs`` (or bind the caller's node if mknod is refused)."""
    target = paths.resolve(rootfs, device.path)
    what = f"mknod {device.path}"
    try:
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        paths.check_inside(rootfs, os.path.dirname(target), what)
        try:
            os.mknod(target, device.kind | device.mode,
                     os.makedev(device.major, device.minor))
        except FileExistsError:
            return
        except PermissionError:
            _bind_host_node(rootfs, device)
            return
        os.chown(target, device.uid, device.gid, follow_symlinks=False)
        os.chmod(target, device.mode)
    except OSError as exc:
        raise ContainerError.from_os("device", what, exc) from exc


def _bind_host_node(rootfs: str, device: Device) -> None:
    target = paths.create_file(rootfs, device.path, 0o600)
    sc.mount(device.path, target, None, sc.MS_BIND)


def create_devices(rootfs: str, extra: list[Device]) -> None:
    """The default nodes, then the spec's ``linux.devices``."""
    for device in (*DEFAULT_DEVICES, *extra):
        create_device(rootfs, device)


def create_symlinks(rootfs: str) -> None:
    """/dev/fd, stdio, ptmx -> pts/ptmx (the container's own devpts) and core -> /proc/kcore."""
    links = list(DEV_SYMLINKS)
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    dev = paths.resolve(rootfs, "/dev")
    try:
        for target, link in links:
            try:
                os.symlink(target, dev + link[len("/dev"):])
            except FileExistsError:
                pass
        ptmx = dev + "/ptmx"
        if os.path.lexists(ptmx):
            os.unlink(ptmx)
        os.symlink("pts/ptmx", ptmx)
    except OSError as exc:
        raise ContainerError.from_os("device", "create /dev symlinks", exc) from exc


def bind_console(rootfs: str, tty_fd: int = 0) -> None:
    """Bind the terminal on ``tty_fd`` (the pty slave) onto the container's /dev/console.

    The source is the tty's *path* (our copy of the caller's /dev/pts), not
    /proc/self/fd/N: that magic link leads to a mount of the caller's mount
    namespace, which the kernel refuses to bind from.
    """
    target = paths.create_file(rootfs, "/dev/console", 0o666)
    try:
        sc.mount(os.ttyname(tty_fd), target, None, sc.MS_BIND)
    except OSError as exc:
        raise ContainerError.from_os("device", "bind /dev/console", exc) from exc
