"""Joining a host network namespace from QEMU's process, before it execs."""

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
