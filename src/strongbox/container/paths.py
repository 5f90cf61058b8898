"""Paths resolves a container path inside a root file system that may be hostile.

Before pivot_root the rootfs is just a directory of the caller's file
system, and its contents come from an image: a symlink ``/etc -> /`` or
``/a -> ../../../..`` must not make a mount, device node or directory land
outside it. Symlinks are therefore resolved one component at a time with the
rootfs standing in for "/" (an absolute target restarts at the rootfs,
``..`` stops at it), the way chroot(2) would see them. Components that do
not exist yet are kept literally, so the result can be created.

The answer is checked once more with realpath(3) just before use: if
something raced us and swapped a component for a symlink, the call fails
instead of escaping.
"""

from __future__ import annotations

import os
import stat

from strongbox.container.errors import ContainerError

#: The kernel's own limit on symlinks followed in one lookup.
MAX_SYMLINKS = 40


def resolve(root: str, path: str) -> str:
    """``path`` (absolute or not, as seen inside ``root``) as a host path under ``root``."""
    root = root.rstrip("/") or "/"
    pending = [p for p in reversed(path.split("/")) if p]
    resolved: list[str] = []
    followed = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = _join(root, [*resolved, part])
        try:
            st = os.lstat(candidate)
        except OSError:  # missing (or under a non-directory): kept literally
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        followed += 1
        if followed > MAX_SYMLINKS:
            raise ContainerError("rootfs", f"resolve {path}: too many levels of symbolic links",
                                 40)
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending.extend(p for p in reversed(target.split("/")) if p)
    return _join(root, resolved)


def _join(root: str, parts: list[str]) -> str:
    if not parts:
        return root
    return ("" if root == "/" else root) + "/" + "/".join(parts)


def check_inside(root: str, host_path: str, what: str) -> None:
    """Refuse ``host_path`` if, resolved by the kernel now, it is no longer under ``root``."""
    real = os.path.realpath(host_path)
    root = root.rstrip("/")
    if real != root and not real.startswith(root + "/"):
        raise ContainerError("rootfs", f"{what}: {host_path} resolves to {real}, outside the "
                             "container's root file system")


def mkdir_all(root: str, path: str, mode: int = 0o755) -> str:
    """Create directory ``path`` inside ``root`` (safely resolved); returns the host path."""
    target = resolve(root, path)
    try:
        os.makedirs(target, mode, exist_ok=True)
    except OSError as exc:
        raise ContainerError.from_os("rootfs", f"mkdir {path}", exc) from exc
    check_inside(root, target, f"mkdir {path}")
    return target


def create_file(root: str, path: str, mode: int = 0o644) -> str:
    """Create an empty file ``path`` inside ``root`` unless something is there already."""
    target = resolve(root, path)
    parent = os.path.dirname(target)
    try:
        os.makedirs(parent, 0o755, exist_ok=True)
        check_inside(root, parent, f"create {path}")
        if not os.path.lexists(target):
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW,
                             mode))
    except OSError as exc:
        raise ContainerError.from_os("rootfs", f"create {path}", exc) from exc
    return target
