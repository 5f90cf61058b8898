"""AdoptedVM is a pooled VM as its new owner holds it: a :class:`~strongbox.hypervisor.base.VM`.

QEMU stays the keeper's child (:mod:`.keeper`), so the owner never names it
by pid (it may be in another pid namespace, as a CLI monitor is): it holds a
pidfd to signal it and to enter its namespaces, the agent channel the keeper
passed, and the claim socket. The keeper reports QEMU's exit on that socket;
an EOF without one means the keeper died, and QEMU with it. Closing is the
release: the owner shuts its side, the keeper removes everything and closes
its own, and only then does :meth:`close` return.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

from strongbox.errors import HypervisorError
from strongbox.hypervisor.base import (
    Accelerator,
    DiskSpec,
    Eject,
    NicSpec,
    VMSpec,
    exits_within,
    log_tail,
)
from strongbox.sandbox import rundir
from strongbox.sandbox.pool import wire

#: Seconds a release waits for the keeper to report everything removed.
RELEASE_WAIT = 15.0


class AdoptedVM:
    """A running VM handed over by a pool keeper (see the module docstring)."""

    def __init__(self, spec: VMSpec, accel: Accelerator, claim: socket.socket, *,
                 agent_fd: int, pidfd: int, info: dict[str, Any]) -> None:
        self.spec, self.accel, self._claim, self._pidfd = spec, accel, claim, pidfd
        self.vmm_pid = int(info["vmm_pid"])
        self.agent_socket: socket.socket | None = socket.socket(fileno=agent_fd)
        self.launched_at = self.qmp_ready_at = self.running_at = time.monotonic()
        self.returncode: int | None = None
        self.keeper = (Path(str(info["root"])), str(info["name"]))
        self._status: asyncio.Future[int] | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 10.0) -> None:
        """It runs already: from now on the claim socket is read for its exit."""
        self._status = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._status is not None
        while True:
            message, fds = await wire.receive(self._claim)
            for fd in fds:
                os.close(fd)
            if message is None:
                break
            if "exit" in message and not self._status.done():
                self._status.set_result(int(message["exit"]))
        if not self._status.done():  # the keeper died: QEMU died with it
            self._status.set_result(-signal.SIGKILL)

    async def save_state(self, timeout: float = 60.0) -> None:
        raise HypervisorError("a pooled VM cannot be saved as a template")

    async def wait(self) -> int:
        if self._status is None:
            return 0
        self.returncode = await asyncio.shield(self._status)
        return self.returncode

    async def wait_exit(self, timeout: float) -> bool:
        return await exits_within(self.wait, timeout)

    def _signal(self, signum: int) -> None:
        if self.returncode is None and self._pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signum)

    async def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM (QEMU quits), then SIGKILL if it has not within ``timeout``."""
        self._signal(signal.SIGTERM)
        if not await self.wait_exit(timeout):
            self.kill()
        return await self.wait()

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def console_tail(self, lines: int = 5) -> list[str]:
        return log_tail(self.spec.console_log, lines)

    def failure_reason(self) -> str:
        tail = log_tail(self.spec.run_dir / "qemu.log", 1)
        if tail:
            return tail[-1]
        return f"exited with status {self.returncode}" if self.returncode is not None \
            else "no error output"

    async def add_disk(self, disk: DiskSpec, timeout: float = 10.0) -> None:
        raise HypervisorError(f"cannot add disk {disk.serial}: a pooled VM's QMP is its keeper's")

    async def remove_disk(self, serial: str, timeout: float = 20.0,
                          eject: Eject | None = None) -> None:
        return None  # nothing was ever plugged in

    async def add_nic(self, nic: NicSpec, timeout: float = 10.0) -> None:
        raise HypervisorError(f"cannot add NIC {nic.mac}: a pooled VM's QMP is its keeper's")

    async def remove_nic(self, mac: str, timeout: float = 20.0,
                         eject: Eject | None = None) -> None:
        return None  # nothing was ever plugged in

    def namespace_fd(self) -> int:
        if self._pidfd < 0:
            raise ProcessLookupError("the pooled VM was released")
        return os.dup(self._pidfd)

    async def close(self) -> None:
        """Release the VM: the keeper kills QEMU (if it still runs) and removes its files."""
        if self.agent_socket is not None:
            self.agent_socket.close()
            self.agent_socket = None
        if self._claim.fileno() < 0:
            return
        with contextlib.suppress(OSError):
            self._claim.shutdown(socket.SHUT_WR)
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._reader), RELEASE_WAIT)
        self._claim.close()
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1
        root, name = self.keeper
        rundir.collect(root, name, wait=0)  # a keeper killed -9 left its directory
