"""Wire is how the pool, its keepers and a VM's owner talk: one JSON object per packet.

Every channel is an ``AF_UNIX`` ``SOCK_SEQPACKET`` socket, so a message is a
packet (no framing to get wrong) and descriptors ride on it with
``SCM_RIGHTS``. A descriptor in flight is the kernel's: if the receiver dies
before reading it, it is closed, which is what makes a claim interrupted at
any moment end in an EOF for the keeper (see :mod:`.keeper`).

Where things are: the pool's directory sits beside the VM template
(``<template_path>/../pool``): its socket, its lock (one pool per
directory) and the warm-up container's root filesystem.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from pathlib import Path
from typing import Any

from strongbox.config import Config
from strongbox.errors import SandboxError

#: Bytes of one message; fds travel beside it.
MAX_MESSAGE = 64 * 1024
MAX_FDS = 8


def pool_dir(config: Config) -> Path:
    """The pool's directory: beside the template, so a test's template has its own pool."""
    from strongbox.sandbox.factory import template_path

    return template_path(config).parent / "pool"


def socket_path(config: Config) -> Path:
    return pool_dir(config) / "pool.sock"


def pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair of packet sockets (a claim socket's two ends)."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def encode(message: dict[str, Any]) -> bytes:
    data = json.dumps(message).encode()
    if len(data) > MAX_MESSAGE:
        raise SandboxError(f"pool message too large ({len(data)} bytes)")
    return data


def decode(data: bytes) -> dict[str, Any] | None:
    """The message, or None for EOF (an empty packet is never sent)."""
    if not data:
        return None
    message = json.loads(data)
    if not isinstance(message, dict):
        raise SandboxError("pool message is not a JSON object")
    return message


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    """Blocking send (packets are small; the peer's buffer never fills)."""
    socket.send_fds(sock, [encode(message)], fds or [])


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def receive(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """The next message and the fds that came with it; (None, []) at EOF or reset. One
    reader per socket at a time (see :func:`cancel`)."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    fileno = sock.fileno()
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
        except BlockingIOError:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fileno, _wake, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fileno)
            continue
        except (ConnectionResetError, OSError):
            return None, []
        for fd in fds:
            os.set_inheritable(fd, False)
        try:
            return decode(data), fds
        except (ValueError, SandboxError):
            for fd in fds:
                os.close(fd)
            raise


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel a task reading a socket and wait until it stopped reading: only then may the
    socket be read by another task or closed (one reader per fd in asyncio's selector)."""
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def request(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None,
                  timeout: float = 10.0) -> tuple[dict[str, Any], list[int]]:
    """Send ``message`` and wait for the answer; EOF, a timeout or ``{"error"}`` raise."""
    try:
        send(sock, message, fds)
    except OSError:
        raise SandboxError(f"pool: the peer went away before {next(iter(message))!r}") from None
    try:
        answer, got = await asyncio.wait_for(receive(sock), timeout)
    except TimeoutError:
        raise SandboxError(f"pool: no answer to {next(iter(message))!r} "
                           f"within {timeout:g}s") from None
    if answer is None:
        raise SandboxError(f"pool: the peer went away during {next(iter(message))!r}")
    if "error" in answer:
        for fd in got:
            os.close(fd)
        raise SandboxError(f"pool: {answer['error']}")
    return answer, got
