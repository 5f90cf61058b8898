"""Netns joins a host network namespace: the owner joins the sandbox's (QEMU's).

Which namespace QEMU runs in is decided by :mod:`.network.slots`: the one a
spec names by path (podman's, CRI's), else a fresh one (a spec asking for a
new namespace without a path, as Docker and ctr do, and one with no network
namespace at all: a VM cannot share the host's network stack, so
``--network host`` gets a namespace of its own too). Either way
``/proc/<QEMU pid>/ns/net`` is the namespace the sandbox uses, which a hook
(Docker's ``libnetwork-setkey``) or a client entering it configures. Nothing
is mounted: the namespace lives as long as the processes in it (and the
sandbox's own fd of it).
"""

from __future__ import annotations

import os

from strongbox.container._syscalls import CLONE_NEWNET, setns


def join_netns(path: str) -> None:
    """setns(2) into the network namespace bound at ``path`` (e.g. /run/netns/x)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd, CLONE_NEWNET)
    except OSError as exc:
        raise OSError(exc.errno, f"joining network namespace {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def netns_of(pid: int) -> str:
    """The network namespace of a host process (the VMM's is the sandbox's)."""
    return f"/proc/{pid}/ns/net"
