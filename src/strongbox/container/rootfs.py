"""Rootfs builds the container's view of the file system and moves the process into it.

Runs in the container process, inside its new mount namespace:

1. :func:`prepare`: make "/" private (or ``rootfsPropagation``) so nothing
   leaks back to the caller, bind the rootfs onto itself so it is a mount
   point pivot_root accepts, mount the spec's ``mounts`` in order, populate
   /dev, bind the console;
2. :func:`pivot`: ``pivot_root(".", ".")`` then detach the old root that
   now sits on top (no put_old directory needed). pivot_root refuses a root
   that is the initramfs; then MS_MOVE + chroot is the fallback, which is
   weaker (a chroot can be escaped with CAP_SYS_CHROOT), hence the agent
   bind-mounts its root and chroots into it at boot so that pivot_root works;
3. :func:`finalize`, now inside: mask paths, make paths read-only, and make
   the root read-only last (the steps before still write to it).
"""

from __future__ import annotations

import errno
import os

from strongbox.container import _syscalls as sc
from strongbox.container import devices, mounts, paths
from strongbox.container.errors import ContainerError
from strongbox.container.mountopts import MountOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from strongbox.container.plan import ContainerPlan

#: File systems a user namespace may be refused (sysfs without a network namespace of its
#: own, cgroup2 without a cgroup namespace): the caller's mount is bound instead, as runc does.
BIND_IN_USERNS = ("sysfs", "cgroup", "cgroup2")

#: What readonlyPaths become, on top of the flags they already have: read-only only, as
#: runc does. (Adding nodev made a read-only device node, e.g. /dev/null, unusable.)
READONLY_FLAGS = sc.MS_RDONLY


def prepare(plan: ContainerPlan, rootfs: str, mount_sources: dict[int, str],
            terminal: bool) -> None:
    """Steps before pivot_root; ``rootfs`` must be a real path (no symlinks in it)."""
    try:
        sc.mount(None, "/", None, plan.propagation)
        if not plan.propagation & sc.MS_PRIVATE:
            _make_private(_mount_point_of(rootfs))
        sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)
    except OSError as exc:
        raise ContainerError.from_os("rootfs", f"prepare {rootfs}", exc) from exc
    readonly_dev = None
    for entry in plan.mounts:
        defer = (entry.destination == "/dev" and not entry.is_bind
                 and bool(entry.options.flags & sc.MS_RDONLY))
        try:
            target = mounts.mount_entry(rootfs, entry, mount_sources.get(entry.index), defer)
        except ContainerError as err:
            if not (plan.userns and entry.fstype in BIND_IN_USERNS and err.errno == errno.EPERM):
                raise
            target = _bind_instead(rootfs, entry)
        if defer:
            readonly_dev = target
    if plan.setup_dev:
        paths.mkdir_all(rootfs, "/dev")
        devices.create_devices(rootfs, plan.devices)
        devices.create_symlinks(rootfs)
    if terminal:
        devices.bind_console(rootfs, 0)
    paths.mkdir_all(rootfs, plan.process.cwd)
    if readonly_dev is not None:
        try:
            sc.mount(None, readonly_dev, None, sc.MS_REMOUNT | sc.MS_RDONLY
                     | mounts.current_flags(readonly_dev))
        except OSError as exc:
            raise ContainerError.from_os("mount", "remount /dev read-only", exc) from exc


def _bind_instead(rootfs: str, entry: mounts.MountEntry) -> str:
    """The caller's mount at the destination, recursively, with the entry's flags (runc's
    fallback when a user namespace may not mount sysfs or cgroup2 there)."""
    options = MountOptions(entry.options.flags | sc.MS_BIND | sc.MS_REC,
                           entry.options.propagation)
    bind = mounts.MountEntry(entry.index, entry.destination, "bind", entry.destination, options)
    return mounts.mount_entry(rootfs, bind, entry.destination)


def _mount_point_of(path: str) -> str:
    """The mount point ``path`` lives on, from /proc/self/mountinfo (longest prefix wins)."""
    best = "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _unescape(line.split(" ", 5)[4])
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) > len(best):
                best = point
    return best


def _unescape(field: str) -> str:
    """Undo mountinfo's octal escapes (``\\040`` for a space, ...)."""
    if "\\" not in field:
        return field
    out = []
    i = 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _make_private(mount_point: str) -> None:
    """pivot_root refuses a new root whose parent mount is shared."""
    sc.mount(None, mount_point, None, sc.MS_PRIVATE)


def pivot(rootfs: str) -> bool:
    """Make ``rootfs`` this process's "/"; False when it had to fall back to MS_MOVE + chroot.

    The fallback is runc's --no-pivot: the caller's mounts stay in the
    container's mount namespace, merely out of reach of the chroot.
    """
    old_root = -1
    try:
        old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        os.chdir(rootfs)
        try:
            sc.pivot_root(".", ".")
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            sc.mount(rootfs, "/", None, sc.MS_MOVE)
            os.chroot(".")
            os.chdir("/")
            return False
        # The old root is now stacked on the new one. Make *it* rslave so its unmount
        # propagates nowhere: from the old root's own directory, as runc does. From the
        # new root's, MS_REC would also reach the container's mounts and turn a lone
        # shared bind private, losing the propagation its options asked for.
        os.fchdir(old_root)
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount(".", sc.MNT_DETACH)
        os.chdir("/")
    except OSError as exc:
        raise ContainerError.from_os("rootfs", f"pivot_root {rootfs}", exc) from exc
    finally:
        if old_root >= 0:
            os.close(old_root)
    return True


def finalize(plan: ContainerPlan) -> None:
    """Inside the new root: masked and read-only paths, then the read-only root."""
    if plan.propagation & (sc.MS_SHARED | sc.MS_SLAVE):
        try:
            sc.mount(None, "/", None, plan.propagation)
        except OSError as exc:
            raise ContainerError.from_os("rootfs", "set propagation of /", exc) from exc
    for path in plan.masked_paths:
        mask_path(path)
    for path in plan.readonly_paths:
        readonly_path(path)
    if plan.root_readonly:
        try:
            mounts.bind_remount("/", sc.MS_RDONLY)
        except OSError as exc:
            raise ContainerError.from_os("rootfs", "remount / read-only", exc) from exc


def mask_path(path: str) -> None:
    """Hide ``path``: an empty read-only tmpfs over a directory, /dev/null over a file."""
    try:
        if os.path.isdir(path):
            sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, "size=0")
        else:
            sc.mount("/dev/null", path, None, sc.MS_BIND)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ContainerError.from_os("rootfs", f"mask {path}", exc) from exc


def readonly_path(path: str) -> None:
    """Bind ``path`` onto itself and make that bind read-only, keeping its other flags."""
    try:
        sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
        mounts.bind_remount(path, READONLY_FLAGS)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ContainerError.from_os("rootfs", f"make {path} read-only", exc) from exc
