"""Userns holds a container's user namespace mappings and applies them as runc does.

The container's init unshares CLONE_NEWUSER itself, but a process cannot
give itself arbitrary mappings: its parent (the agent, root of the guest's
initial user namespace) writes ``/proc/PID/uid_map`` and ``gid_map`` from
``linux.uidMappings``/``gidMappings``. ``setgroups`` is left at "allow", as
runc leaves it for a privileged (non-rootless) runtime, so the workload may
still call setgroups(2) for its additional gids.

Everything that needs privileges of the initial namespace (joining the
cgroup, rlimits above the hard limit, a lower oom_score_adj, handing stdio
to the workload's owner) happens before the unshare: afterwards the process
is only root of its own namespace.
"""

from __future__ import annotations

import os

from strongbox.container.errors import ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: One line of /proc/PID/uid_map: (container ID, host ID, size).
IdRange = tuple[int, int, int]


def parse_mappings(entries: list[dict[str, Any]], key: str) -> list[IdRange]:
    """``linux.<key>`` as ranges; each field is a uint32, the size at least 1."""
    out = []
    for index, entry in enumerate(entries):
        try:
            fields = tuple(int(entry[name]) for name in ("containerID", "hostID", "size"))
        except (KeyError, TypeError, ValueError):
            raise ContainerError("userns", f"linux.{key}[{index}]: containerID, hostID and "
                                 "size must be integers") from None
        if not all(0 <= f < 2**32 for f in fields) or fields[2] == 0:
            raise ContainerError("userns", f"linux.{key}[{index}]: IDs must be uint32s and "
                                 "the size at least 1")
        out.append((fields[0], fields[1], fields[2]))
    return out


def to_host(ranges: list[IdRange], inside: int) -> int | None:
    """The host (guest kernel) ID that ``inside`` maps to, None if unmapped."""
    for container_id, host_id, size in ranges:
        if container_id <= inside < container_id + size:
            return host_id + inside - container_id
    return None


def map_text(ranges: list[IdRange]) -> bytes:
    return "".join(f"{c} {h} {s}\n" for c, h, s in ranges).encode()


class UserNamespace:
    """The mappings of a new user namespace (both are required, as runc requires them)."""

    __slots__ = ("gids", "uids")

    def __init__(self, uids: list[IdRange], gids: list[IdRange]) -> None:
        self.uids = uids
        self.gids = gids

    @classmethod
    def from_spec(cls, linux: dict[str, Any], wanted: bool) -> UserNamespace | None:
        """The mappings when ``wanted`` (a new user namespace), else None.

        Mappings without a user namespace, or a user namespace without them,
        are refused, as runc refuses them.
        """
        uids = parse_mappings(list(linux.get("uidMappings") or []), "uidMappings")
        gids = parse_mappings(list(linux.get("gidMappings") or []), "gidMappings")
        if not wanted:
            if uids or gids:
                raise ContainerError("userns", "linux.uidMappings/gidMappings are given but "
                                     "linux.namespaces has no user namespace")
            return None
        if not uids or not gids:
            raise ContainerError("userns", "a user namespace needs linux.uidMappings and "
                                 "linux.gidMappings")
        return cls(uids, gids)

    def host_ids(self, uid: int, gid: int) -> tuple[int, int]:
        """(host uid, host gid) of the container's ``uid``/``gid`` (-1 for unmapped: unchanged)."""
        host_uid = to_host(self.uids, uid)
        host_gid = to_host(self.gids, gid)
        return (-1 if host_uid is None else host_uid, -1 if host_gid is None else host_gid)

    def write(self, pid: int) -> None:
        """In the parent: write the maps of ``pid``, which has just unshared its user namespace.

        Each map must arrive in one write(2), hence os.write rather than a text file.
        """
        for name, ranges in (("uid_map", self.uids), ("gid_map", self.gids)):
            path = f"/proc/{pid}/{name}"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, map_text(ranges))
                finally:
                    os.close(fd)
            except OSError as exc:
                raise ContainerError.from_os("userns", f"write {name} "
                                             f"{map_text(ranges).decode().strip()!r}",
                                             exc) from exc


def become_root() -> None:
    """In the new namespace, once mapped: uid and gid 0 there, keeping every capability.

    The kernel clears capabilities when all uids become non-zero, and 0 is
    judged in the namespace, so this keeps them (runc does the same). It
    fails when the mappings leave container root out.
    """
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError as exc:
        raise ContainerError.from_os("userns", "become root in the user namespace (are uid "
                                     "and gid 0 mapped?)", exc) from exc
