"""Shares put host files into the guest through one virtio-9p export per sandbox.

The export is ``<run dir>/shared``. Each host path a container needs (its
root filesystem, the sources of its bind mounts) is bind-mounted under it,
read-only where the spec says so, *inside QEMU's own mount namespace*: the
binds never exist in the host's namespace, so however strongbox or QEMU
dies there is no mount to leak, and the kernel enforces read-only even
against a compromised QEMU.

Layout inside the export (the agent relies on it)::

    <container id>/rootfs        the bundle's root filesystem
    <container id>/mounts/<n>    the source of spec mount number n
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from strongbox.container._syscalls import (
    CLONE_NEWNS,
    MS_BIND,
    MS_REC,
    MS_SLAVE,
    mount,
    unshare,
)
from strongbox.errors import SandboxError
from strongbox.mountapi import (
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    set_tree_flags,
)

SHARE_TAG = "sbshare"


class Share:
    """One host path bound at ``target`` (relative to the export)."""

    __slots__ = ("readonly", "source", "target")

    def __init__(self, source: str, target: str, readonly: bool) -> None:
        self.source = source
        self.target = target
        self.readonly = readonly

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
        target = f"{container_id}/mounts/{index}"
        shares.append(Share(source, target, readonly="ro" in (entry.get("options") or [])))
        mounts[str(index)] = target
    return shares, mounts


def prepare_targets(export: Path, shares: list[Share]) -> None:
    """Create the (empty) mount points in the host's view of the export."""
    for share in shares:
        target = export / share.target
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.isdir(share.source):
            target.mkdir(exist_ok=True)
        else:
            target.touch(exist_ok=True)


def bind_in_new_namespace(export: Path, shares: list[Share]) -> None:
    """Runs in QEMU's process before exec: private namespace, then the binds.

    The namespace is a slave of the host's, so host mounts made later (a
    volume mounted by the caller) still show, while ours never propagate
    back.
    """
    unshare(CLONE_NEWNS)
    mount("none", "/", None, MS_REC | MS_SLAVE)
    for share in shares:
        target = str(export / share.target)
        mount(share.source, target, None, MS_BIND | MS_REC)
        set_tree_flags(target, share_flags(share))


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
