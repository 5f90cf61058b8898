"""Vmmounts changes the mounts of a running VM's export, inside QEMU's mount namespace.

QEMU runs in a mount namespace of its own (see :mod:`shares`); a container
added to a running sandbox (a pod) needs its root filesystem and bind-mount
sources under the export *there*. A short-lived child process enters that
namespace (setns needs a single-threaded caller, which a fresh fork is) and
mounts; anything from the host's namespace travels as a detached mount tree.
Failures come back as one line over a pipe. Nothing is ever mounted in the
host's namespace, so nothing can leak there.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from strongbox.container._syscalls import (
    CLONE_NEWNS,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    mount,
    setns,
    umount,
)
from strongbox.container.mountopts import MountOptions
from strongbox.errors import SandboxError, StrongboxError
from strongbox.hostpath import make_beneath, open_beneath, open_source
from strongbox.mountapi import (
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_RDONLY,
    clone_tree_at,
)
from strongbox.sandbox.shares import (
    SHARE_FLAGS,
    Share,
    attach_beneath,
    open_share,
    prepare_targets,
)

#: Opens a pidfd (or namespace fd) of the VMM for setns(2): the VM's ``namespace_fd``. A
#: pidfd names QEMU in any pid namespace, so a VM started by a pool keeper works too.
NamespaceOf = Callable[[], int]
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8
log = logging.getLogger("strongbox.sandbox")


def _in_namespace(vmm: NamespaceOf, what: str, work: Callable[[], None]) -> None:
    """Run ``work`` in a child that joined the VMM's mount namespace."""
    try:
        ns_fd = vmm()
    except OSError:
        raise SandboxError(f"{what}: the VMM is gone") from None
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        child = os.fork()
        if child == 0:
            try:
                os.close(err_r)
                setns(ns_fd, CLONE_NEWNS)
                work()
                os._exit(0)
            except BaseException as exc:
                try:
                    os.write(err_w, str(exc).encode()[:500])
                finally:
                    os._exit(1)
        os.close(err_w)
        err_w = -1
        with os.fdopen(err_r, "rb") as pipe:
            err_r = -1
            message = pipe.read().decode(errors="replace")
        _, status = os.waitpid(child, 0)
        if status != 0:
            raise SandboxError(f"{what}: {message or f'status {status}'}")
    finally:
        os.close(ns_fd)
        for fd in (err_r, err_w):
            if fd >= 0:
                os.close(fd)


def unmount_device(vmm: NamespaceOf, rdev: int) -> None:
    """Unmount every mount of block device ``rdev`` in QEMU's namespace: its copies of the
    host's mounts, made when it started, would keep the device busy (:mod:`.blockroot`)."""
    from strongbox.sandbox.blockroot import mounts_of

    def work() -> None:
        for point in sorted(mounts_of(rdev), key=len, reverse=True):
            umount(point, MNT_DETACH)  # nothing in QEMU has a file open there

    _in_namespace(vmm, "releasing a block device's mounts in the VMM", work)


def attach_share(vmm: NamespaceOf, export: Path, share: Share) -> None:
    """Bind a host path into the running VM's export, read-only if asked."""
    prepare_targets(export, [share])
    tree = open_share(share)
    try:
        _in_namespace(vmm, f"sharing {share.source}",
                      lambda: attach_beneath(export, tree, share.target))
    finally:
        os.close(tree)


def mount_rootfs(vmm: NamespaceOf, export: Path, target: str, mounts: list[dict[str, Any]]) -> None:
    """Mount containerd's rootfs mounts (overlay, bind ...) at ``target`` in the export."""
    try:
        make_beneath(str(export), target, directory=True)
    except OSError as exc:
        raise SandboxError(f"rootfs mount point {target}: {exc.strerror}") from exc

    def work() -> None:  # the mount point found again in QEMU's namespace, no symlink followed
        for m in mounts:
            options = MountOptions.parse(list(m.get("options") or []))
            fstype = m.get("type") or None
            if fstype == "bind" or options.is_bind:
                # A tree with its flags set before it is attached, so the copies that
                # propagate (into the jail's view of the export) carry them too.
                source = open_source(m["source"])
                try:
                    tree = clone_tree_at(source, SHARE_FLAGS | _attrs(options.flags), target)
                finally:
                    os.close(source)
                try:
                    attach_beneath(export, tree, target)
                finally:
                    os.close(tree)
                continue
            point = open_beneath(str(export), target)
            try:  # born nosuid,nodev: mount(2) takes those flags at once
                mount(m.get("source") or "none", f"/proc/self/fd/{point}", fstype,
                      options.flags | MS_NOSUID | MS_NODEV, options.data or None)
            finally:
                os.close(point)

    _in_namespace(vmm, f"mounting the rootfs of {target}", work)


def _attrs(flags: int) -> int:
    """The MOUNT_ATTR_* equivalents of a bind mount's MS_* option flags."""
    return ((MOUNT_ATTR_RDONLY if flags & MS_RDONLY else 0)
            | (MOUNT_ATTR_NOEXEC if flags & MS_NOEXEC else 0))


def detach(vmm: NamespaceOf, export: Path, target: str) -> None:
    """Unmount everything at ``target`` in the VM's export (lazily, recursively)."""
    path = str(export / target)

    def work() -> None:
        while os.path.ismount(path):
            umount(path, MNT_DETACH | UMOUNT_NOFOLLOW)

    _in_namespace(vmm, f"unsharing {target}", work)


def export_container(vmm: NamespaceOf, export: Path, rootfs_target: str,
                     rootfs_mounts: list[dict[str, Any]], shares: list[Share]) -> None:
    """Export a container added to a running VM: its rootfs (containerd's mounts, when
    given) and its shares."""
    if rootfs_mounts:
        mount_rootfs(vmm, export, rootfs_target, rootfs_mounts)
    for share in shares:
        attach_share(vmm, export, share)


def unexport_container(vmm: NamespaceOf, export: Path, container_id: str) -> None:
    """Unmount what was exported for a container, and remove its mount points."""
    base = export / container_id
    # Shares are at mounts/<n>/<name> (mounts/<n> for a source of "/"): deepest first.
    for target in [*base.glob("mounts/*/*"), *base.glob("mounts/*"), base / "rootfs"]:
        try:
            detach(vmm, export, str(target.relative_to(export)))
        except StrongboxError as exc:
            log.warning("unexporting %s: %s", target, exc)
    shutil.rmtree(base, ignore_errors=True)
