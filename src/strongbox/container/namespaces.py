"""Namespaces decides which kernel namespaces a container creates and which it joins.

``linux.namespaces`` entries without a ``path`` are created (unshare), with
one they are joined (setns). The pid namespace is special twice over: it
only applies to children, and its first child becomes PID 1, so the
launcher enters it *around its own fork()* (:func:`pid_namespace_for_fork`)
and the container process is born as PID 1, a direct child of the caller.
That is why there is no intermediate process to reap.

A new user namespace (runc's order) is created first, mapped by the parent
(:mod:`userns`), and every other new namespace is created after it, so it
owns them: the pid namespace too, which the kernel requires for mounting
/proc in it. The caller then cannot pre-enter the pid namespace for its
fork; the container process unshares it and forks the namespace's PID 1
itself (see :mod:`launcher`).

Not supported: time namespaces, and joining a user namespace by path.
Joining another mount namespace is refused too: the rootfs is built by
mounting, which must not happen in a namespace somebody else uses.
"""

from __future__ import annotations

import os

from strongbox.container import _syscalls as sc
from strongbox.container import userns
from strongbox.container.errors import ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: OCI namespace type -> (CLONE_NEW* flag, name under /proc/PID/ns)
TYPES = {
    "pid": (sc.CLONE_NEWPID, "pid"),
    "network": (sc.CLONE_NEWNET, "net"),
    "mount": (sc.CLONE_NEWNS, "mnt"),
    "ipc": (sc.CLONE_NEWIPC, "ipc"),
    "uts": (sc.CLONE_NEWUTS, "uts"),
    "user": (sc.CLONE_NEWUSER, "user"),
    "cgroup": (sc.CLONE_NEWCGROUP, "cgroup"),
    "time": (sc.CLONE_NEWTIME, "time"),
}

#: Order in which namespaces are joined: the mount namespace last, since
#: it changes what the other paths (and /proc) mean.
JOIN_ORDER = ("ipc", "uts", "network", "cgroup", "mount")


class Namespaces:
    """The spec's namespaces: ``new`` types to create, ``join`` type -> path."""

    __slots__ = ("join", "new")

    def __init__(self, new: set[str] | None = None, join: dict[str, str] | None = None) -> None:
        self.new = new or set()
        self.join = join or {}

    @classmethod
    def from_spec(cls, entries: list[dict[str, Any]]) -> Namespaces:
        ns = cls()
        for entry in entries:
            kind = entry.get("type", "")
            if kind not in TYPES:
                raise ContainerError("namespace", f"unknown namespace type {kind!r}")
            if kind in ns.new or kind in ns.join:
                raise ContainerError("namespace", f"namespace {kind} is listed twice")
            if kind == "time":
                raise ContainerError("namespace", "time namespaces are not supported")
            path = entry.get("path")
            if path:
                if kind in ("mount", "user"):
                    raise ContainerError("namespace", f"joining a {kind} namespace is not "
                                         "supported")
                ns.join[kind] = path
            else:
                ns.new.add(kind)
        if "mount" not in ns.new:
            raise ContainerError("namespace", "a new mount namespace is required")
        return ns

    def has(self, kind: str) -> bool:
        return kind in self.new or kind in self.join

    def unshare_flags(self) -> int:
        """Flags for the container process's unshare(2) after the user namespace: every new
        one but user, and pid only when a user namespace must own it (else the caller's
        fork enters it)."""
        flags = 0
        for kind in self.new:
            if kind != "user" and (kind != "pid" or "user" in self.new):
                flags |= TYPES[kind][0]
        return flags


def open_ns(path: str, what: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ContainerError.from_os("namespace", f"open {what} namespace {path}", exc) from exc


def join(fd: int, kind: str) -> None:
    try:
        sc.setns(fd, TYPES[kind][0])
    except OSError as exc:
        raise ContainerError.from_os("namespace", f"join {kind} namespace", exc) from exc


def enter(ns: Namespaces, map_user: Callable[[], None] | None = None) -> None:
    """In the container process: join the namespaces with a path, then create the new ones.

    Every path is opened before the first setns, while they still mean what
    the caller meant. Joined before created so a new namespace (cgroup,
    mount) is a child of the joined world. A new user namespace comes next:
    ``map_user`` has the parent write its maps, then the process becomes its
    root and creates the rest inside it.
    """
    fds = [(kind, open_ns(ns.join[kind], kind)) for kind in JOIN_ORDER if kind in ns.join]
    try:
        for kind, fd in fds:
            join(fd, kind)
    finally:
        for _, fd in fds:
            os.close(fd)
    if "user" in ns.new:
        try:
            sc.unshare(sc.CLONE_NEWUSER)
        except OSError as exc:
            raise ContainerError.from_os("namespace", "unshare user", exc) from exc
        if map_user is not None:
            map_user()
        userns.become_root()
    try:
        sc.unshare(ns.unshare_flags())
    except OSError as exc:
        names = ", ".join(sorted(ns.new - {"user"} - (set() if "user" in ns.new else {"pid"})))
        raise ContainerError.from_os("namespace", f"unshare {names}", exc) from exc
    if "network" in ns.new:
        try:
            sc.loopback_up()
        except OSError as exc:
            raise ContainerError.from_os("namespace", "bring up lo", exc) from exc


def same_namespace(pid: int, name: str) -> bool:
    """Whether process ``pid`` shares this process's namespace of that /proc/PID/ns ``name``."""
    mine = os.stat(f"/proc/self/ns/{name}")
    theirs = os.stat(f"/proc/{pid}/ns/{name}")
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


class PidNamespaceForFork:
    """Makes the next fork() land in a new (or the given) pid namespace.

    unshare(CLONE_NEWPID) and setns(CLONE_NEWPID) change only where this
    process's *children* go; :meth:`leave` makes the caller's own namespace
    the children's namespace again, so nothing else the caller forks is
    affected. Only the parent calls :meth:`leave`: the child is already in
    the new namespace and could not go back up.
    """

    __slots__ = ("_join_fd", "_mine")

    def __init__(self, join_fd: int | None = None) -> None:
        self._join_fd = join_fd
        self._mine = -1

    def enter(self) -> None:
        self._mine = open_ns("/proc/self/ns/pid", "own pid")
        try:
            if self._join_fd is None:
                sc.unshare(sc.CLONE_NEWPID)
            else:
                sc.setns(self._join_fd, sc.CLONE_NEWPID)
        except OSError as exc:
            os.close(self._mine)
            raise ContainerError.from_os("namespace", "enter pid namespace", exc) from exc

    def leave(self) -> None:
        try:
            sc.setns(self._mine, sc.CLONE_NEWPID)
        finally:
            os.close(self._mine)
