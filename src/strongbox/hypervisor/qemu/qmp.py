"""Qmp is strongbox's thin layer over the ``qemu.qmp`` library.

It connects over the socket QEMU inherited and translates the library's
errors into :class:`HypervisorError` at this one boundary, keeping the
command and QEMU's answer on the exception.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from qemu.qmp import ExecuteError, QMPClient, QMPError

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

    async def disconnect(self) -> None:
        try:
            await self._client.disconnect()
        except (QMPError, OSError, EOFError):
            pass  # QEMU going away closes the socket under us; that is fine here
