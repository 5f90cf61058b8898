"""Nsthread runs a piece of work inside a network namespace, on a thread of its own.

setns(2) and unshare(2) with CLONE_NEWNET change only the calling thread, and
a socket or tun device belongs to the namespace of the thread that created
it; so a short-lived thread joins (or creates) the namespace, does its work
there and exits, while the rest of the process never leaves its own. This is
used instead of pyroute2's ``netns=`` support, which forks a helper process
(unsafe in the threaded shim) and creates a namespace that does not exist
instead of failing. Standard library only: the launch path uses it before
anything imports pyroute2.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from strongbox.container._syscalls import CLONE_NEWNET, setns, unshare
from strongbox.errors import SandboxError

T = TypeVar("T")
NS_GET_NSTYPE = 0xB703  # ioctl on a namespace fd: its CLONE_NEW* type


def _on_thread(name: str, work: Callable[[], T]) -> T:
    box: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            box.append(work())
        except BaseException as exc:  # handed to the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box[0]


def open_netns(path: str) -> int:
    """An fd of the network namespace at ``path``; a missing path, or one that is not a
    network namespace, is one error naming it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SandboxError(f"network namespace {path} does not exist") from None
    except OSError as exc:
        raise SandboxError(f"network namespace {path}: {exc.strerror}") from None
    try:
        kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        kind = 0  # not a namespace file at all
    if kind != CLONE_NEWNET:
        os.close(fd)
        raise SandboxError(f"network namespace {path}: not a network namespace")
    return fd


def run_in(netns: str, work: Callable[[], T]) -> T:
    """``work()`` on a thread that joined the namespace at ``netns`` (one error if it is
    missing)."""
    def joined() -> T:
        fd = open_netns(netns)
        try:
            setns(fd, CLONE_NEWNET)
        finally:
            os.close(fd)
        return work()

    return _on_thread("sb-netns", joined)


def new_netns() -> int:
    """An fd of a new, empty network namespace; this process stays where it is."""
    def create() -> int:
        unshare(CLONE_NEWNET)
        return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    try:
        return _on_thread("sb-newnet", create)
    except OSError as exc:
        raise SandboxError(f"cannot create a network namespace: {exc}") from exc
