"""GuestVM is one booted guest: a QEMU process plus a ready agent connection.

Boot is a race between three outcomes, and each gets its own error: the
agent answers (ready), QEMU exits (the guest crashed or QEMU refused its
configuration: :class:`HypervisorError` with the console's last words), or
the deadline passes (:class:`AgentTimeout`). Whatever happens, ``destroy``
leaves no process behind.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from strongbox.config import Config
from strongbox.errors import AgentBroken, AgentError, AgentTimeout, HypervisorError
from strongbox.hypervisor.base import VMSpec
from strongbox.hypervisor.jailer import JailPolicy
from strongbox.hypervisor.qemu.accel import Accelerator
from strongbox.hypervisor.qemu.driver import ChildSetup, QemuVM
from strongbox.sandbox.agent_client import AgentClient

#: Console lines worth quoting in an error, in preference to the last line.
_TELLING = ("Kernel panic", "Error", "error:", "Traceback", "not found", "failed")


class GuestVM:
    """Boot, use and tear down one microVM."""

    def __init__(self, config: Config, spec: VMSpec, accel: Accelerator,
                 child_setup: ChildSetup | None = None) -> None:
        qemu = config.hypervisor.qemu
        self.config = config
        self.spec = spec
        self.accel = accel
        jail = JailPolicy(uid_base=qemu.jailer_uid_base, pids_max=qemu.jailer_pids_max,
                          memory_overhead_mib=qemu.jailer_memory_overhead) if qemu.jailer else None
        self.qemu = QemuVM(spec, accel, qemu.path, qemu.tcg_tb_size, child_setup, jail=jail)
        self.agent: AgentClient | None = None
        self.ready_at = 0.0

    @property
    def launched_at(self) -> float:
        return self.qemu.launched_at

    async def boot(self, timeout: float) -> None:
        """Start QEMU and wait until the agent has answered HELLO."""
        deadline = time.monotonic() + timeout
        await self.qemu.start(timeout=timeout)
        assert self.qemu.agent_socket is not None
        self.agent = AgentClient(self.qemu.agent_socket,
                                 request_timeout=self.config.agent.request_timeout)
        remaining = max(0.1, deadline - time.monotonic())
        handshake = asyncio.create_task(self.agent.handshake(remaining))
        exited = asyncio.create_task(self.qemu.wait())
        done, _ = await asyncio.wait({handshake, exited}, return_when=asyncio.FIRST_COMPLETED)
        if handshake in done and handshake.exception() is None:
            exited.cancel()
            self.ready_at = time.monotonic()
            return
        error = None if exited in done else handshake.exception()
        if isinstance(error, AgentBroken):
            # The channel usually breaks because QEMU is exiting: say that instead.
            done, _ = await asyncio.wait({exited}, timeout=2)
        if exited in done:
            handshake.cancel()
            raise HypervisorError(f"the VM exited during boot (status {exited.result()})"
                                  f"{self._console_hint()}")
        exited.cancel()
        assert error is not None
        if isinstance(error, AgentTimeout):
            raise AgentTimeout(f"the guest agent did not answer within {timeout:g}s"
                               f"{self._console_hint()}") from None
        if isinstance(error, AgentError):
            raise type(error)(f"{error}{self._console_hint()}") from None
        raise error

    def _console_hint(self) -> str:
        """The most telling recent console line: a panic or error if there is one."""
        tail = self.qemu.console_tail(20)
        if not tail:
            return ""
        telling = [ln for ln in tail if any(w in ln for w in _TELLING)]
        line = (telling or tail)[-1].strip()
        return f"; guest console: {line[:200]}"

    async def call(self, method: str, params: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        assert self.agent is not None
        return await self.agent.call(method, params, timeout=timeout)

    async def shutdown(self, timeout: float = 10.0) -> int:
        """Power the guest off through the agent; force it if that fails."""
        if self.agent is not None and self.qemu.returncode is None:
            try:
                await self.agent.call("shutdown", timeout=timeout)
            except AgentError:
                pass  # the guest may be gone already; QEMU is stopped below
            if await self.qemu.wait_exit(timeout):
                return await self.qemu.wait()
        return await self.qemu.stop(timeout)

    async def destroy(self) -> None:
        """Make sure nothing of this VM keeps running; release host handles."""
        if self.agent is not None:
            await self.agent.close()
        self.qemu.kill()
        await self.qemu.wait()
        await self.qemu.close()
