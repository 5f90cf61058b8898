"""Netmon wakes the sandbox when its network namespace changes while containers run.

Kata's ``enable_netmon``: an engine may add an interface to a running sandbox
(``docker network connect``, a CNI plugin run later), take one away, or give one
another address or route, and the guest should follow without a restart. The
watch is a netlink socket opened in the sandbox's namespace and subscribed to its
link, address and route groups; what a message says is not read, only that one
came: the sandbox then looks again (:meth:`.slots.SandboxNetwork.sync`, which
reads the namespace through the netlink library and tells the guest only what
changed). A burst of messages (an engine's veth arriving, renamed, moved, given
addresses and routes) is one look once the namespace has been quiet for
``settle`` seconds. The socket is the standard library's, not the netlink
library's: the watch costs a start nothing (no import), and the loop reads it
without a thread.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

from strongbox.errors import StrongboxError
from strongbox.sandbox.network.nsthread import run_in

log = logging.getLogger("strongbox.sandbox")

#: rtnetlink multicast groups (linux/rtnetlink.h): links, IPv4/IPv6 addresses and routes.
RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE = 0x1, 0x10, 0x40
RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE = 0x100, 0x400
GROUPS = (RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR
          | RTMGRP_IPV6_ROUTE)
#: Quiet seconds before a burst of changes counts as done.
SETTLE = 0.2


def _subscribe() -> socket.socket:
    """On a thread in the namespace: a netlink socket of it (it stays the namespace's)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK
                         | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
    try:
        sock.bind((0, GROUPS))
    except OSError:
        sock.close()
        raise
    return sock


class NetMonitor:
    """Calls ``changed()`` after each burst of changes in the namespace at ``netns``."""

    def __init__(self, netns: str, changed: Callable[[], Awaitable[None]],
                 settle: float = SETTLE) -> None:
        self.netns, self.changed, self.settle = netns, changed, settle
        self._sock: socket.socket | None = None
        self._dirty = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Subscribe (in the running event loop); a namespace that cannot be watched is a
        warning, not a failed start: the sandbox still syncs before each container starts."""
        try:
            self._sock = run_in(self.netns, _subscribe)
        except (OSError, StrongboxError) as exc:
            log.warning("network namespace %s: not watched for changes (%s)", self.netns, exc)
            return
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                if not self._sock.recv(65536):
                    break
            except BlockingIOError:
                break
            except OSError:  # ENOBUFS: messages were lost, which is a change as well
                break
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._look())

    async def _look(self) -> None:
        while self._dirty:
            self._dirty = False
            await asyncio.sleep(self.settle)
            if self._dirty:
                continue  # still changing
            try:
                await self.changed()
            except (StrongboxError, OSError) as exc:
                log.warning("network namespace %s changed: %s", self.netns, exc)

    def stop(self) -> None:
        """No more looks: the subscription goes, a look under way is cancelled."""
        if self._sock is not None:
            try:
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            except RuntimeError:  # no loop running any more: nothing reads it
                pass
            self._sock.close()
            self._sock = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
