"""Mounts performs the OCI ``mounts`` list inside the container's root file system.

Each entry is parsed in the caller (:class:`MountEntry`, so option errors
fail early) and mounted by the container process, in spec order, in its own
mount namespace, at its destination resolved safely inside the rootfs
(:mod:`paths`). Bind mounts read their source from the caller's file
system: ``mount_sources`` lets the agent substitute the place it shared a
host path to. A bind mount's flags other than MS_BIND/MS_REC only take
effect through a second, remounting call, which is how ``ro`` works.
"""

from __future__ import annotations

import os
import stat

from strongbox.container import _syscalls as sc
from strongbox.container import paths
from strongbox.container.errors import ContainerError
from strongbox.container.mountopts import REMOUNT_FLAGS, MountOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Mount types that are mounted by another name: strongbox is cgroup v2 only.
FSTYPE_ALIASES = {"cgroup": "cgroup2"}


class MountEntry:
    """One entry of the spec's ``mounts``, options parsed."""

    __slots__ = ("destination", "fstype", "index", "options", "source")

    def __init__(self, index: int, destination: str, fstype: str, source: str,
                 options: MountOptions) -> None:
        self.index = index
        self.destination = destination
        self.fstype = fstype
        self.source = source
        self.options = options

    @classmethod
    def from_spec(cls, index: int, entry: dict[str, Any]) -> MountEntry:
        destination = entry.get("destination") or ""
        if not destination:
            raise ContainerError("mount", f"mounts[{index}] has no destination")
        options = MountOptions.parse(list(entry.get("options") or []))
        fstype = entry.get("type") or ""
        if fstype == "bind" or (not fstype and options.is_bind):
            fstype = "bind"
            options.flags |= sc.MS_BIND
        return cls(index, "/" + destination.lstrip("/"), fstype, entry.get("source") or "",
                   options)

    @property
    def is_bind(self) -> bool:
        return self.options.is_bind

    def __repr__(self) -> str:
        return f"MountEntry({self.destination!r}, {self.fstype!r}, {self.options!r})"


def parse_mounts(spec_mounts: list[dict[str, Any]]) -> list[MountEntry]:
    return [MountEntry.from_spec(i, m) for i, m in enumerate(spec_mounts)]


def current_flags(path: str) -> int:
    """The MS_* flags ``path``'s mount has now (statvfs reports them with the same bits)."""
    return os.statvfs(path).f_flag & REMOUNT_FLAGS


def bind_remount(target: str, flags: int, keep: bool = True) -> None:
    """Change a bind mount's per-mount flags, by default keeping the ones it already has.

    Without ``keep`` only ``flags`` are asked for; if the kernel refuses
    (EPERM: flags locked by the source mount) the existing ones are added,
    as runc does.
    """
    base = sc.MS_BIND | sc.MS_REMOUNT | (flags & REMOUNT_FLAGS)
    if keep:
        sc.mount(None, target, None, base | current_flags(target))
        return
    try:
        sc.mount(None, target, None, base)
    except PermissionError:
        sc.mount(None, target, None, base | current_flags(target))


def mount_entry(rootfs: str, entry: MountEntry, source: str | None = None,
                defer_readonly: bool = False) -> str:
    """Mount ``entry`` under ``rootfs``; returns the host path it was mounted on.

    ``source`` overrides a bind mount's spec source. With ``defer_readonly``
    a non-bind mount is made read-only later by the caller (``/dev`` must
    stay writable until its device nodes exist).
    """
    what = f"mount {entry.destination}"
    try:
        if entry.is_bind:
            return _bind(rootfs, entry, source or entry.source)
        target = paths.mkdir_all(rootfs, entry.destination)
        paths.check_inside(rootfs, target, what)
        opts = entry.options
        flags = opts.flags
        if defer_readonly:
            flags &= ~sc.MS_RDONLY
        if flags & sc.MS_REMOUNT:
            sc.mount(None, target, None, flags, opts.data or None)
        else:
            fstype = FSTYPE_ALIASES.get(entry.fstype, entry.fstype)
            # v1 cgroup options (controller names) mean nothing to cgroup2: drop them.
            data = None if fstype != entry.fstype else opts.data or None
            sc.mount(entry.source or fstype, target, fstype, flags, data)
        _propagate(target, opts)
    except OSError as exc:
        raise ContainerError.from_os("mount", what, exc) from exc
    return target


def _bind(rootfs: str, entry: MountEntry, source: str) -> str:
    what = f"mount {entry.destination}"
    try:
        st = os.stat(source)
    except OSError as exc:
        raise ContainerError.from_os("mount", f"{what}: source {source}", exc) from exc
    if stat.S_ISDIR(st.st_mode):
        target = paths.mkdir_all(rootfs, entry.destination)
    else:
        target = paths.create_file(rootfs, entry.destination)
    paths.check_inside(rootfs, target, what)
    opts = entry.options
    sc.mount(source, target, None, sc.MS_BIND | (opts.flags & sc.MS_REC))
    extra = opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
    if extra:
        bind_remount(target, extra, keep=False)
    _propagate(target, opts)
    return target


def _propagate(target: str, opts: MountOptions) -> None:
    for flags in opts.propagation:
        sc.mount(None, target, None, flags)
