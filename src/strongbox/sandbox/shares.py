"""Shares put host files into the guest through one virtio-9p export per sandbox.

The export is ``<run dir>/shared``. Each host path a container needs (its
root filesystem, the sources of its bind mounts) is bind-mounted under it,
read-only where the spec says so, *inside QEMU's own mount namespace*: the
binds never exist in the host's namespace, so however strongbox or QEMU
dies there is no mount to leak, and the kernel enforces read-only even
against a compromised QEMU.

Layout inside the export (the agent relies on it)::

    <container id>/rootfs                 the bundle's root filesystem
    <container id>/mounts/<n>/<name>      the source of spec mount number n

``<name>`` is the source's own name (:func:`share_name`): a bind mount's
root in the container's ``/proc/self/mountinfo`` is this path, and with
runc it ends in the source's name too, which tools that read mountinfo
(finding a volume by its directory name) rely on.

Every source is resolved once into a descriptor and mounted from it
(:mod:`strongbox.hostpath`): the rootfs with no symlink anywhere in its
path (runc's rule), a bind source following ordinary symlinks but no
``/proc`` magic links. Mount points are made and found beneath the export
with no symlink followed: the guest can write there through 9p, and a
symlink it planted must not send a mount, or a new directory, anywhere else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from strongbox.container._syscalls import (
    CLONE_NEWNS,
    MS_REC,
    MS_SLAVE,
    mount,
    unshare,
)
from strongbox.errors import SandboxError
from strongbox.hostpath import is_symlink_error, make_beneath, open_beneath, open_exact, open_source
from strongbox.mountapi import (
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    attach_tree_at,
    clone_tree_at,
)
from strongbox.oci.errors import SpecError

SHARE_TAG = "sbshare"


class Share:
    """One host path bound at ``target`` (relative to the export).

    ``field`` is where the spec names the source (``root.path``,
    ``mounts[3].source``), for errors; ``exact`` refuses any symlink on the
    source's path (the rootfs), else ordinary symlinks are followed.
    """

    __slots__ = ("exact", "field", "readonly", "source", "target")

    def __init__(self, source: str, target: str, readonly: bool, *, field: str = "",
                 exact: bool = False) -> None:
        self.source = source
        self.target = target
        self.readonly = readonly
        self.field = field or target
        self.exact = exact

    def __repr__(self) -> str:
        return f"Share({self.source!r} -> {self.target!r}{', ro' if self.readonly else ''})"


def is_bind(mount_entry: dict[str, Any]) -> bool:
    options = mount_entry.get("options") or []
    return mount_entry.get("type") == "bind" or "bind" in options or "rbind" in options


def bind_shares(container_id: str, spec: dict[str, Any]) -> tuple[list[Share], dict[str, str]]:
    """The spec's bind mounts as shares, and the agent's map of mount index -> share path."""
    shares: list[Share] = []
    mounts: dict[str, str] = {}
    for index, entry in enumerate(spec.get("mounts") or []):
        if not is_bind(entry):
            continue
        source = entry.get("source") or ""
        if not os.path.isabs(source):
            raise SandboxError(f"mounts[{index}].source: a bind mount needs an absolute host "
                               f"path, got {source!r}")
        if not os.path.exists(source):
            raise SandboxError(f"mounts[{index}].source: {source}: no such file or directory")
        name = share_name(source)
        target = f"{container_id}/mounts/{index}" + (f"/{name}" if name else "")
        shares.append(Share(source, target, readonly="ro" in (entry.get("options") or []),
                            field=f"mounts[{index}].source"))
        mounts[str(index)] = target
    return shares, mounts


def share_name(source: str) -> str:
    """The last component of what ``source`` resolves to, as runc's mountinfo root shows it.

    A symlinked source shows its target's name there (the kernel records the
    dentry, not the path asked for). Empty for "/", which has no name: its
    share then stays at ``mounts/<n>``.
    """
    name = os.path.basename(os.path.realpath(source))
    return "" if name in ("", ".", "..") else name


def prepare_targets(export: Path, shares: list[Share]) -> None:
    """Create the (empty) mount points in the host's view of the export, beneath it."""
    for share in shares:
        try:
            make_beneath(str(export), share.target, directory=os.path.isdir(share.source))
        except OSError as exc:
            raise SandboxError(f"{share.field}: cannot make its mount point {share.target} "
                               f"in the VM's export: {exc.strerror}") from exc


def open_share(share: Share) -> int:
    """The share's source as a detached mount tree with its flags, resolved once.

    A rootfs that is or passes a symlink is refused with runc's reason.
    """
    try:
        source = open_exact(share.source) if share.exact else open_source(share.source)
    except OSError as exc:
        if share.exact and is_symlink_error(exc):
            raise SpecError(share.field, "a real directory (runc: invalid rootfs: not an "
                            "absolute path, or a symlink)", f"{share.source!r}") from None
        if is_symlink_error(exc):
            raise SpecError(share.field, "a host path that does not pass through /proc's "
                            "magic links", f"{share.source!r}") from None
        raise SandboxError(f"{share.field}: {share.source}: {exc.strerror}") from None
    try:
        return clone_tree_at(source, share_flags(share), share.source)
    except OSError as exc:
        raise SandboxError(f"{share.field}: cannot share {share.source}: {exc.strerror}") \
            from None
    finally:
        os.close(source)


def attach_beneath(export: Path, tree: int, target: str) -> None:
    """Attach a tree from :func:`open_share` on its mount point, found with no symlink."""
    point = open_beneath(str(export), target)
    try:
        attach_tree_at(tree, point, target)
    finally:
        os.close(point)


def bind_in_new_namespace(export: Path, trees: list[tuple[int, str]]) -> None:
    """Runs in QEMU's process before exec: private namespace, then the shares.

    ``trees`` are (tree, target) pairs from :func:`open_share`, cloned in
    the host's namespace before the fork. The namespace is a slave of the
    host's, so host mounts made later (a volume mounted by the caller) still
    show, while ours never propagate back.
    """
    unshare(CLONE_NEWNS)
    mount("none", "/", None, MS_REC | MS_SLAVE)
    for tree, target in trees:
        attach_beneath(export, tree, target)


#: What every share carries, read-only or not (see :func:`share_flags`).
SHARE_FLAGS = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV


def share_flags(share: Share) -> int:
    """Mount flags for a share and every mount below it.

    QEMU never needs a device node or a set-id bit of a container's files:
    the guest kernel opens device nodes itself and checks modes itself, so
    ``nodev,nosuid`` only takes from a compromised QEMU. Read-only holds for
    the whole tree, submounts included.
    """
    return SHARE_FLAGS | MOUNT_ATTR_RDONLY if share.readonly else SHARE_FLAGS
