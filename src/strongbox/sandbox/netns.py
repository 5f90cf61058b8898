"""Netns puts QEMU (and so the sandbox) in the host network namespace its spec names.

A spec naming a namespace by path (podman's, CRI's) has QEMU join it. Every
other spec gets a fresh one for QEMU: one that asks for a new namespace
without a path (Docker, ctr), and one with no network namespace at all (a VM
cannot share the host's network stack, so ``--network host`` gets a
namespace of its own too). Either way ``/proc/<QEMU pid>/ns/net`` is the
namespace the sandbox uses, which a hook (Docker's ``libnetwork-setkey``) or
a client entering it configures. Nothing is mounted: the namespace lives as
long as the processes in it.
"""

from __future__ import annotations

import os

from strongbox.container._syscalls import CLONE_NEWNET, setns, unshare


def join_netns(path: str) -> None:
    """setns(2) into the network namespace bound at ``path`` (e.g. /run/netns/x)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd, CLONE_NEWNET)
    except OSError as exc:
        raise OSError(exc.errno, f"joining network namespace {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def enter_sandbox_netns(path: str | None) -> None:
    """In QEMU's process before exec: join ``path``, or make a namespace of its own."""
    if path:
        join_netns(path)
    else:
        unshare(CLONE_NEWNET)


def netns_of(pid: int) -> str:
    """The network namespace of a host process (the VMM's is the sandbox's)."""
    return f"/proc/{pid}/ns/net"
