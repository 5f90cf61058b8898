"""Qmp is strongbox's thin layer over the ``qemu.qmp`` library.

It connects over the socket QEMU inherited and translates the library's
errors into :class:`HypervisorError` at this one boundary, keeping the
command and QEMU's answer on the exception.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from qemu.qmp import ExecuteError, Message, QMPClient, QMPError

from strongbox.errors import HypervisorError

logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)


class QMPCommandError(HypervisorError):
    """QEMU refused a QMP command."""

    def __init__(self, command: str, message: str) -> None:
        super().__init__(f"QMP {command}: {message}")
        self.command = command


class Monitor:
    """One QMP session with one QEMU process."""

    def __init__(self, name: str) -> None:
        self._client = QMPClient(name)

    async def connect(self, sock: socket.socket, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._client.connect(sock), timeout)
        except (TimeoutError, QMPError, OSError, EOFError) as exc:
            raise HypervisorError(f"QMP connection failed: {exc or type(exc).__name__}") from exc

    async def execute(self, command: str, arguments: dict[str, Any] | None = None,
                      timeout: float = 10.0) -> Any:
        try:
            return await asyncio.wait_for(self._client.execute(command, arguments), timeout)
        except ExecuteError as exc:
            raise QMPCommandError(command, exc.error.error.desc) from exc
        except (TimeoutError, QMPError, OSError, EOFError) as exc:
            raise HypervisorError(f"QMP {command} failed: {exc or type(exc).__name__}") from exc

    async def send_fd(self, fd: int, name: str) -> None:
        """Hand QEMU a file descriptor (SCM_RIGHTS + ``getfd``) under ``name``."""
        try:
            self._client.send_fd_scm(fd)
        except (QMPError, OSError) as exc:
            raise HypervisorError(f"passing a descriptor to QEMU failed: {exc}") from exc
        await self.execute("getfd", {"fdname": name})

    async def add_fd(self, fd: int) -> int:
        """Hand QEMU a file descriptor (SCM_RIGHTS + ``add-fd``) as a new fd set; its id,
        for ``/dev/fdset/ID`` wherever QEMU would open a path."""
        try:
            self._client.send_fd_scm(fd)
        except (QMPError, OSError) as exc:
            raise HypervisorError(f"passing a descriptor to QEMU failed: {exc}") from exc
        answer = await self.execute("add-fd")
        return int(answer["fdset-id"])

    async def execute_until(self, command: str, arguments: dict[str, Any], event: str,
                            match: dict[str, Any], timeout: float,
                            meanwhile: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run ``command``, then wait for ``event`` whose data has ``match`` (the guest's
        acknowledgement of a device removal); listening starts before the command, and
        ``meanwhile`` (something that hastens the event) runs after it."""
        def wanted(message: Message) -> bool:
            data = dict(message).get("data")
            return isinstance(data, dict) and all(data.get(k) == v for k, v in match.items())

        with self._client.listener(event, event_filter=wanted) as listener:
            await self.execute(command, arguments, timeout)
            if meanwhile is not None:
                await meanwhile()
            try:
                await asyncio.wait_for(listener.get(), timeout)
            except TimeoutError:
                raise HypervisorError(f"QMP {command}: no {event} within {timeout:g}s: the "
                                      "guest did not acknowledge it") from None

    async def disconnect(self) -> None:
        try:
            await self._client.disconnect()
        except (QMPError, OSError, EOFError):
            pass  # QEMU going away closes the socket under us; that is fine here
