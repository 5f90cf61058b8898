"""GuestVM is one booted guest: a VMM process plus a ready agent connection.

Boot is a race between three outcomes, and each gets its own error: the
agent answers (ready), the VMM exits (the guest crashed or the VMM refused its
configuration: :class:`HypervisorError` with the console's last words), or
the deadline passes (:class:`AgentTimeout`). Whatever happens, ``destroy``
leaves no process behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from strongbox.errors import AgentBroken, AgentError, AgentTimeout, HypervisorError
from strongbox.hypervisor.base import VM
from strongbox.protocol import verbs
from strongbox.protocol.verbs import Verb
from strongbox.sandbox.agent_client import AgentClient

log = logging.getLogger("strongbox.sandbox")

#: Console lines worth quoting in an error, in preference to the last line.
_TELLING = ("Kernel panic", "Error", "error:", "Traceback", "not found", "failed")


class GuestVM:
    """Boot, use and tear down one guest: a :class:`~strongbox.hypervisor.base.VM` and its agent."""

    def __init__(self, vm: VM, *, request_timeout: float) -> None:
        self.vmm = vm
        self.spec = vm.spec
        self.request_timeout = request_timeout
        self.agent: AgentClient | None = None
        self.ready_at = 0.0
        self._watcher: asyncio.Task[None] | None = None
        #: Set once we stop the VM ourselves: its exit is then no news.
        self._stopping = False

    @property
    def alive(self) -> bool:
        """False once the VMM has exited (and its status has been collected)."""
        return self.vmm.returncode is None

    @property
    def stopping(self) -> bool:
        """True once we began stopping the VM (or it exited): no new work for it."""
        return self._stopping or not self.alive

    @property
    def launched_at(self) -> float:
        return self.vmm.launched_at

    async def boot(self, timeout: float) -> None:
        """Start the VMM and wait until the agent has answered HELLO."""
        deadline = time.monotonic() + timeout
        await self.vmm.start(timeout=timeout)
        assert self.vmm.agent_socket is not None
        self.agent = AgentClient(self.vmm.agent_socket, request_timeout=self.request_timeout)
        remaining = max(0.1, deadline - time.monotonic())
        handshake = asyncio.create_task(self.agent.handshake(remaining))
        exited = asyncio.create_task(self.vmm.wait())
        done, _ = await asyncio.wait({handshake, exited}, return_when=asyncio.FIRST_COMPLETED)
        if handshake in done and handshake.exception() is None:
            exited.cancel()
            self.ready_at = time.monotonic()
            return
        error = None if exited in done else handshake.exception()
        if isinstance(error, AgentBroken):
            # The channel usually breaks because the VMM is exiting: say that instead.
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

    def watch(self, on_exit: Callable[[int], None]) -> None:
        """Call ``on_exit(status)`` as soon as the VMM exits, unless we stopped it.

        The one watcher of VM death for both front doors: a VMM killed under
        its owner (SIGKILL, an OOM kill, a guest crash) is collected at once,
        so nothing later mistakes it for a live VM (entering its namespace,
        asking its agent), and every pending agent request fails now.
        """
        async def watcher() -> None:
            status = await self.vmm.wait()
            if self._stopping:
                return
            on_exit(status)
            if self.agent is not None:
                await self.agent.close()

        self._watcher = asyncio.create_task(watcher())

    async def release_agent(self) -> int:
        """Stop reading the agent channel and watching the VMM; a dup of the channel for the
        VM's next owner (a pool keeper hands its warmed VM over: the agent takes a new HELLO
        at any time). This object keeps the VMM itself."""
        assert self.vmm.agent_socket is not None
        fd = os.dup(self.vmm.agent_socket.fileno())
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        if self.agent is not None:
            await self.agent.close()
            self.agent = None
        return fd

    def _console_hint(self) -> str:
        """The most telling recent console line: a panic or error if there is one."""
        tail = self.vmm.console_tail(20)
        if not tail:
            return ""
        telling = [ln for ln in tail if any(w in ln for w in _TELLING)]
        line = (telling or tail)[-1].strip()
        return f"; guest console: {line[:200]}"

    async def call(self, verb: Verb, params: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        assert self.agent is not None
        return await self.agent.call(verb, params, timeout=timeout)

    async def eject(self, port: str) -> None:
        """Have the guest power off the hotplug slot below ``port`` (an unplug under way
        then needs no five-second wait); a guest that cannot leaves the wait to its
        hotplug driver, so a refusal is only logged."""
        try:
            await self.call(verbs.EJECT_SLOT, {"port": port})
        except AgentError as exc:
            log.debug("guest eject of the slot below %s: %s", port, exc)

    async def shutdown(self, timeout: float = 10.0) -> int:
        """Power the guest off through the agent; force it if that fails."""
        self._stopping = True
        if self.agent is not None and self.vmm.returncode is None:
            try:
                await self.agent.call(verbs.SHUTDOWN, timeout=timeout)
            except AgentError:
                pass  # the guest may be gone already; the VMM is stopped below
            if await self.vmm.wait_exit(timeout):
                return await self.vmm.wait()
        return await self.vmm.stop(timeout)

    async def destroy(self) -> None:
        """Make sure nothing of this VM keeps running; release host handles."""
        self._stopping = True
        if self.agent is not None:
            await self.agent.close()
        self.vmm.kill()
        await self.vmm.wait()
        await self.vmm.close()
        if self._watcher is not None:
            if not self._watcher.done():
                self._watcher.cancel()
            self._watcher = None
