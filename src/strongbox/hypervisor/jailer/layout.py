"""Layout builds a jail's root directory: the host's own paths, as empty mount points.

Every exposed host path appears in the jail at the same absolute path, so
QEMU's command line means the same inside the jail and out. Symlinks on the
way are recreated as the same symlinks (Debian's ``/lib -> usr/lib``, the
dynamic loader's ``/lib64/ld-linux-x86-64.so.2`` chain, the firmware's
``bios-microvm.bin -> qboot.rom``), and the path they resolve to gets an
empty directory or file: the mount point the child binds the host path
onto (:mod:`.confine`), in QEMU's own mount namespace only. On the host the
jail holds nothing but those mount points and symlinks, so removing the
run directory removes it; nothing is ever mounted in the host's namespace.

A path already inside an exposed directory needs no bind of its own unless
it must be writable and the directory is not.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from strongbox.errors import HypervisorError

_MAX_SYMLINKS = 40  # as the kernel's path walk


@dataclass(frozen=True)
class Bind:
    """One host path bound into the jail at the same path."""

    #: The host path with every symlink resolved (the mount source and target).
    source: str
    writable: bool
    kind: str  # "dir", "file" or "device"

    def target(self, jail: Path) -> str:
        return str(jail) + self.source


def resolve(path: str) -> tuple[str, list[tuple[str, str]]]:
    """``path`` with every symlink resolved, and the symlinks met on the way (path, target)."""
    if not os.path.isabs(path):
        raise HypervisorError(f"jailer: {path!r} is not an absolute path")
    pending = list(Path(path).parts[1:])
    current = "/"
    links: list[tuple[str, str]] = []
    while pending:
        name = pending.pop(0)
        if name == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, name)
        if not os.path.islink(candidate):
            current = candidate
            continue
        if len(links) >= _MAX_SYMLINKS:
            raise HypervisorError(f"jailer: {path}: {os.strerror(errno.ELOOP)}")
        link_target = os.readlink(candidate)
        links.append((candidate, link_target))
        if os.path.isabs(link_target):
            current = "/"
            pending[:0] = list(Path(link_target).parts[1:])
        else:
            pending[:0] = list(Path(link_target).parts)
    return current, links


def _inside(jail: Path, path: str) -> str:
    """``path`` under ``jail``, refusing anything whose parent leaves the jail."""
    inside = str(jail) + path
    parent = os.path.realpath(os.path.dirname(inside))
    if parent != os.path.dirname(inside):
        raise HypervisorError(f"jailer: {inside}: a symlink on the way leaves the jail")
    return inside


def _copy_symlink(jail: Path, link: str, link_target: str) -> None:
    os.makedirs(str(jail) + os.path.dirname(link), mode=0o755, exist_ok=True)
    inside = _inside(jail, link)
    if os.path.islink(inside):
        return  # already mirrored (the same host link)
    os.symlink(link_target, inside)


def _kind(path: str) -> str:
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise HypervisorError(f"jailer: cannot expose {path}: {exc.strerror}") from exc
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "file"


def _within(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip("/") + "/")


def plan(jail: Path, expose: Sequence[tuple[str, bool]]) -> list[Bind]:
    """The binds that make ``expose`` visible in ``jail`` (shallowest first), mount points made.

    ``expose`` lists (host path, writable). Every path must exist.
    """
    wanted: dict[str, Bind] = {}
    links: dict[str, str] = {}
    for path, writable in expose:
        source, met = resolve(path)
        links.update(met)
        if source == str(jail) or _within(str(jail), source) or _within(source, str(jail)):
            raise HypervisorError(f"jailer: cannot expose {path}: it contains or is in the jail")
        previous = wanted.get(source)
        wanted[source] = Bind(source, writable or (previous is not None and previous.writable),
                              _kind(source))
    dirs = [b for b in wanted.values() if b.kind == "dir"]
    for link, link_target in links.items():
        if not any(_within(link, d.source) for d in dirs):  # else the bind shows it
            _copy_symlink(jail, link, link_target)
    binds = []
    for bind in wanted.values():
        covering = [d for d in dirs if _within(bind.source, d.source)]
        if any(d.writable or not bind.writable for d in covering):
            continue  # visible through a directory bound already, with enough access
        if not covering:
            _mount_point(jail, bind)
        binds.append(bind)
    return sorted(binds, key=lambda b: b.source.count("/"))


def _mount_point(jail: Path, bind: Bind) -> None:
    target = str(jail) + bind.source
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    target = _inside(jail, bind.source)
    if bind.kind == "dir":
        os.makedirs(target, mode=0o755, exist_ok=True)
    elif not os.path.lexists(target):
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
