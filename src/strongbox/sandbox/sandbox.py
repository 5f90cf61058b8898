"""Sandbox creates and manipulates microVM sandboxes and the containers in them.

One sandbox is one VM, one run directory and one agent connection; it hosts
one container (``strongbox run``) or the containers of a pod. The verbs here
are the ones the agent serves, with the same names: ``create_container``,
``start_container``, ``wait_process``, ``signal_process``, ``resize_pty``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongbox.config import Config
from strongbox.errors import AgentRequestError, ContainerStartError, SandboxError
from strongbox.guest.assets import resolve_boot_assets
from strongbox.hypervisor.base import VMSpec
from strongbox.hypervisor.qemu.accel import choose
from strongbox.sandbox.agent_client import FOREVER, AgentStream
from strongbox.sandbox.rundir import RunDir
from strongbox.sandbox.shares import SHARE_TAG, Share, bind_in_new_namespace, prepare_targets
from strongbox.sandbox.vm import GuestVM


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended: ``code`` follows runc (128 + N when killed by signal N)."""

    code: int
    signal: int | None

    @classmethod
    def from_agent(cls, data: dict[str, Any]) -> ExitStatus:
        code, sig = data.get("exit_code"), data.get("signal")
        if not isinstance(code, int) or not (sig is None or isinstance(sig, int)):
            raise SandboxError(f"agent returned a malformed exit status: {data!r}")
        return cls(code, sig)


@dataclass
class ProcessIO:
    """The host ends of one process's stdio streams (None where not connected)."""

    stdin: AgentStream | None
    stdout: AgentStream | None
    stderr: AgentStream | None
    terminal: bool


class Sandbox:
    """A microVM for containers; use :meth:`start` then the container verbs."""

    def __init__(self, config: Config, *, sandbox_id: str, root: Path, state_dir: Path) -> None:
        self.config = config
        self.id = sandbox_id
        self.root = root
        self.state_dir = state_dir
        self.run_dir: RunDir | None = None
        self.vm: GuestVM | None = None

    async def start(self, *, memory_mib: int, vcpus: int, shares: list[Share],
                    timeout: float | None = None) -> None:
        """Boot the VM with ``shares`` exported, and wait for its agent."""
        qemu = self.config.hypervisor.qemu
        kernel, initrd = resolve_boot_assets(self.state_dir, qemu.kernel, qemu.initrd)
        accel = choose(qemu.accelerator)
        self.run_dir = RunDir.create(self.root, self.id)
        export = self.run_dir.path / "shared"
        export.mkdir()
        prepare_targets(export, shares)
        spec = VMSpec(
            name=self.id, kernel=kernel, initrd=initrd, memory_mib=memory_mib, vcpus=vcpus,
            run_dir=self.run_dir.path, debug=qemu.enable_debug,
            kernel_params=tuple(qemu.kernel_params.split()), share_dir=export,
            share_tag=SHARE_TAG,
        )
        self.vm = GuestVM(self.config, spec, accel,
                          child_setup=functools.partial(bind_in_new_namespace, export, shares))
        await self.vm.boot(timeout or self.config.agent.dial_timeout)

    def _vm(self) -> GuestVM:
        if self.vm is None or self.vm.agent is None:
            raise SandboxError(f"sandbox {self.id} is not running")
        return self.vm

    async def _call(self, method: str, params: dict[str, Any], timeout: float | None = None
                    ) -> Any:
        try:
            return await self._vm().call(method, params, timeout=timeout)
        except AgentRequestError as exc:
            raise SandboxError(exc.remote_message) from exc

    async def create_container(self, container_id: str, spec: dict[str, Any], *,
                               mounts: dict[str, str], overlay: bool, stdin: bool,
                               stdout: bool = True, stderr: bool = True) -> ProcessIO:
        """Build the container in the guest, stopped at its start barrier."""
        agent = self._vm().agent
        assert agent is not None
        terminal = bool(spec["process"].get("terminal"))
        io = ProcessIO(
            stdin=agent.open_stream(readable=False, writable=True) if stdin else None,
            stdout=agent.open_stream(readable=True, writable=False) if stdout else None,
            stderr=(agent.open_stream(readable=True, writable=False)
                    if stderr and not terminal else None),
            terminal=terminal,
        )
        stdio = {"terminal": terminal, "stdin": io.stdin.id if io.stdin else None,
                 "stdout": io.stdout.id if io.stdout else None,
                 "stderr": io.stderr.id if io.stderr else None}
        await self._call("create_container", {
            "id": container_id, "spec": spec, "stdio": stdio, "mounts": mounts,
            "rootfs": {"path": f"{container_id}/rootfs", "overlay": overlay},
        })
        return io

    async def start_container(self, container_id: str) -> None:
        try:
            await self._vm().call("start_container", {"id": container_id})
        except AgentRequestError as exc:
            code = exc.data.get("exit_code")
            raise ContainerStartError(exc.remote_message,
                                      code if isinstance(code, int) else 1) from exc

    async def wait_process(self, container_id: str, exec_id: str = "") -> ExitStatus:
        data = await self._call("wait_process", {"id": container_id, "exec_id": exec_id},
                                timeout=FOREVER)
        return ExitStatus.from_agent(data)

    async def signal_process(self, container_id: str, signal: int, *, exec_id: str = "",
                             all_processes: bool = False) -> None:
        await self._call("signal_process", {"id": container_id, "exec_id": exec_id,
                                            "signal": signal, "all": all_processes})

    async def resize_pty(self, container_id: str, rows: int, cols: int,
                         exec_id: str = "") -> None:
        await self._call("resize_pty", {"id": container_id, "exec_id": exec_id,
                                        "rows": rows, "cols": cols})

    async def stop(self, timeout: float = 10.0) -> None:
        """Power the VM off (the agent first, QEMU by force if needed)."""
        if self.vm is not None:
            await self.vm.shutdown(timeout)

    async def destroy(self) -> None:
        """Release everything: no QEMU, no run directory, whatever state we are in."""
        try:
            if self.vm is not None:
                await self.vm.destroy()
        finally:
            if self.run_dir is not None:
                self.run_dir.remove()
                self.run_dir = None
