"""Joining a host network namespace from QEMU's process, before it execs."""

from __future__ import annotations

import ctypes
import os

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def join_netns(path: str) -> None:
    """setns(2) into the network namespace bound at ``path`` (e.g. /run/netns/x)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"joining network namespace {path}: {os.strerror(err)}")
    finally:
        os.close(fd)
