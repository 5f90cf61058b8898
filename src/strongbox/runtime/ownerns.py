"""Ownerns gives a detached monitor pid and mount namespaces of its own, with its own /proc.

The pid a container reports (``state``, ``--pid-file``) is its monitor's.
podman's ``top`` (psgo, with its default columns) never asks the runtime:
it enters the *mount namespace* of that pid and lists the ``/proc`` it finds
there. In the host's mount namespace that is every host process, with its
command line: a leak. So the ``create`` command unshares a pid namespace
before it forks (:func:`prepare_fork`): the monitor is PID 1 of a namespace
holding only itself and what it spawns (QEMU, its jail), and first thing
(:func:`enter`) it takes a mount namespace of its own (a slave of the
host's: host mounts still propagate in) with a ``/proc`` of that pid
namespace. ``podman top`` then lists the monitor and QEMU, nothing else.

Consequences, each handled where it matters:

* every pid the monitor handles (QEMU's, its threads', its children's) is
  one of its own namespace and is only used there, through its own /proc;
  the pid it reports is its *host* pid (:func:`host_pid`), read before the
  new /proc hides it;
* OCI hooks run on the host: in the host's mount and network namespaces
  (:func:`enter_host_namespaces`, in the hook's child, as runc's hooks run
  where runc runs), with the monitor's host pid in their state; the monitor
  has joined the sandbox's network namespace by then, so
  ``/proc/PID/ns/net`` is the sandbox's, which is where a hook such as
  Docker's puts the container's veth;
* as PID 1 the monitor cannot kill itself with a signal to mirror a
  container killed by one: it exits 128+n, which is what conmon and
  containerd's runc shim report for a death by signal anyway;
* if the monitor dies, however it dies, the kernel kills everything in its
  pid namespace: no QEMU can outlive it.

``strongbox run`` in the foreground is its own monitor and keeps the
caller's namespaces (podman, Docker and containerd never use it).
"""

from __future__ import annotations

import os

from strongbox.container._syscalls import (
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_REC,
    MS_SLAVE,
    mount,
    setns,
    unshare,
)
from strongbox.errors import StrongboxError

_host_pid: int | None = None
_host_mount_ns: int | None = None
_host_net_ns: int | None = None


def prepare_fork() -> None:
    """In the command, right before it forks the monitor: the child starts a pid namespace.

    The command itself forks nothing after that (it reports and exits).
    """
    try:
        unshare(CLONE_NEWPID)
    except OSError as exc:
        raise StrongboxError(f"cannot give the monitor a pid namespace: {exc.strerror}") from exc


def enter() -> None:
    """In the monitor (PID 1 of its namespace), first thing: its own mount namespace and /proc."""
    global _host_pid, _host_mount_ns
    try:
        _host_pid = int(os.readlink("/proc/self"))  # the host's /proc, still mounted
        _host_mount_ns = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        unshare(CLONE_NEWNS)
        mount(None, "/", None, MS_REC | MS_SLAVE)
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError as exc:
        raise StrongboxError(f"cannot give the monitor a /proc of its own: "
                             f"{exc.strerror}") from exc


def host_pid() -> int:
    """This process's pid as the host sees it (what a container reports)."""
    return _host_pid if _host_pid is not None else os.getpid()


def keep_host_netns() -> None:
    """Before the monitor joins its sandbox's network namespace: remember the host's, for
    its hooks (idempotent)."""
    global _host_net_ns
    if _host_net_ns is None:
        _host_net_ns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def enter_host_namespaces() -> None:
    """In a child about to exec a host program (a hook): back to the host's mounts, /proc
    and network."""
    if _host_mount_ns is not None:
        setns(_host_mount_ns, CLONE_NEWNS)
    if _host_net_ns is not None:
        setns(_host_net_ns, CLONE_NEWNET)
