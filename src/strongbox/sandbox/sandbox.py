"""Sandbox creates and manipulates microVM sandboxes and the containers in them.

One sandbox is one VM, one run directory and one agent connection; it hosts
one container (``strongbox run``) or the containers of a pod. The verbs here
are the ones the agent serves, with the same names:

* containers: ``create_container``, ``start_container``, ``container_status``,
  ``pause_container``, ``resume_container``, ``update_container``,
  ``stats_container``, ``remove_container``;
* processes (the init has exec id ""): ``exec_process``, ``wait_process``,
  ``signal_process``, ``resize_pty``, ``list_processes``.

The agent's replies are validated into the models of :mod:`.replies`. A refused
verb raises :class:`SandboxRequestError` (its ``code`` says why: no such
container, wrong status, ...); a process that could not be started raises
:class:`ContainerStartError` with the exit code runc would give.
"""

from __future__ import annotations

import base64
import functools
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongbox.config import Config
from strongbox.errors import AgentRequestError, ContainerStartError, SandboxError
from strongbox.guest.assets import resolve_boot_assets
from strongbox.hypervisor.base import VMSpec
from strongbox.hypervisor.qemu.accel import choose
from strongbox.sandbox import vmmounts
from strongbox.sandbox.agent_client import FOREVER, AgentClient, AgentStream
from strongbox.sandbox.factory import Factory
from strongbox.sandbox.netns import join_netns
from strongbox.sandbox.replies import (
    E_CONTAINER,
    E_STATE,
    malformed,
    processes_from_agent,
    stats_from_agent,
)
from strongbox.sandbox.replies import ContainerState as ContainerState
from strongbox.sandbox.replies import ProcessInfo as ProcessInfo
from strongbox.sandbox.replies import SandboxRequestError as SandboxRequestError
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


def _vmm_child_setup(export: Path, shares: list[Share], netns: str | None) -> None:
    """Runs in QEMU's process before exec: its network and mount namespaces."""
    if netns:
        join_netns(netns)
    bind_in_new_namespace(export, shares)


class Sandbox:
    """A microVM for containers; use :meth:`start` then the container verbs."""

    def __init__(self, config: Config, *, sandbox_id: str, root: Path, state_dir: Path) -> None:
        self.config = config
        self.id = sandbox_id
        self.root = root
        self.state_dir = state_dir
        self.run_dir: RunDir | None = None
        self.vm: GuestVM | None = None
        #: True when the VM was cloned from a template rather than booted.
        self.cloned = False

    async def start(self, *, memory_mib: int, vcpus: int, shares: list[Share],
                    timeout: float | None = None, netns: str | None = None) -> None:
        """Boot the VM with ``shares`` exported, and wait for its agent.

        With ``netns``, QEMU runs in that host network namespace (the one the
        caller prepared for the container), so its network devices live there.
        """
        qemu = self.config.hypervisor.qemu
        kernel, initrd = resolve_boot_assets(self.state_dir, qemu.kernel, qemu.initrd)
        accel = choose(qemu.accelerator)
        template = None
        if self.config.factory.enable_template:
            template = Factory(self.config, self.state_dir, self.root).clone_source(memory_mib,
                                                                                   vcpus)
        self.run_dir = RunDir.create(self.root, self.id)
        export = self.run_dir.path / "shared"
        export.mkdir()
        prepare_targets(export, shares)
        state_fd = (os.open(template.state_file, os.O_RDONLY | os.O_CLOEXEC)
                    if template is not None else None)
        try:
            spec = VMSpec(
                name=self.id, kernel=kernel, initrd=initrd, memory_mib=memory_mib, vcpus=vcpus,
                run_dir=self.run_dir.path, debug=qemu.enable_debug,
                kernel_params=tuple(qemu.kernel_params.split()), share_dir=export,
                share_tag=SHARE_TAG,
                memory_file=template.memory_file if template is not None else None,
                state_fd=state_fd, incoming=template is not None,
            )
            self.vm = GuestVM(self.config, spec, accel, child_setup=functools.partial(
                _vmm_child_setup, export, shares, netns))
            await self.vm.boot(timeout or self.config.agent.dial_timeout)
        finally:
            if state_fd is not None:
                os.close(state_fd)
        self.cloned = template is not None
        if self.cloned:
            await self._give_identity()

    async def _give_identity(self) -> None:
        """A clone wakes up as its template: tell it who it is now."""
        await self._call("clone_identity", {
            "hostname": self.id[:64], "time_ns": time.time_ns(),
            "entropy": base64.b64encode(os.urandom(64)).decode(),
        })

    def _vm(self) -> GuestVM:
        if self.vm is None or self.vm.agent is None:
            raise SandboxError(f"sandbox {self.id} is not running")
        return self.vm

    async def _call(self, method: str, params: dict[str, Any], timeout: float | None = None
                    ) -> Any:
        try:
            return await self._vm().call(method, params, timeout=timeout)
        except AgentRequestError as exc:
            raise SandboxRequestError.from_agent(exc) from exc

    def _open_stdio(self, terminal: bool, stdin: bool, stdout: bool, stderr: bool
                    ) -> tuple[ProcessIO, dict[str, Any]]:
        """Host streams for a new process, and the ``stdio`` request that names them."""
        agent = self._vm().agent
        assert agent is not None
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
        return io, stdio

    @staticmethod
    def _close_stdio(agent: AgentClient | None, io: ProcessIO) -> None:
        """Forget the streams of a process that never started."""
        if agent is None:
            return
        for stream in (io.stdin, io.stdout, io.stderr):
            if stream is not None:
                agent.close_stream(stream.id)

    async def create_container(self, container_id: str, spec: dict[str, Any], *,
                               mounts: dict[str, str], overlay: bool, stdin: bool,
                               stdout: bool = True, stderr: bool = True) -> ProcessIO:
        """Build the container in the guest, stopped at its start barrier."""
        io, stdio = self._open_stdio(bool(spec["process"].get("terminal")), stdin, stdout,
                                     stderr)
        await self._call("create_container", {
            "id": container_id, "spec": spec, "stdio": stdio, "mounts": mounts,
            "rootfs": {"path": f"{container_id}/rootfs", "overlay": overlay},
        })
        return io

    async def start_container(self, container_id: str) -> None:
        """Let the created container's process run; raises ContainerStartError if exec fails."""
        try:
            await self._vm().call("start_container", {"id": container_id})
        except AgentRequestError as exc:
            if exc.code == E_STATE:
                raise SandboxRequestError.from_agent(exc) from exc
            code = exc.data.get("exit_code")
            raise ContainerStartError(exc.remote_message,
                                      code if isinstance(code, int) else 1) from exc

    async def container_status(self, container_id: str) -> ContainerState:
        return ContainerState.from_agent(await self._call("container_status",
                                                          {"id": container_id}))

    async def pause_container(self, container_id: str) -> None:
        """Freeze every process of the running container (its cgroup)."""
        await self._call("pause_container", {"id": container_id})

    async def resume_container(self, container_id: str) -> None:
        await self._call("resume_container", {"id": container_id})

    async def update_container(self, container_id: str, resources: dict[str, Any]
                               ) -> dict[str, Any]:
        """Apply OCI ``linux.resources`` (memory, pids, cpu) now; returns the merged resources."""
        data = await self._call("update_container", {"id": container_id,
                                                     "resources": resources})
        if not isinstance(data, dict) or not isinstance(data.get("resources"), dict):
            raise malformed("update answer", data)
        merged: dict[str, Any] = data["resources"]
        return merged

    async def stats_container(self, container_id: str) -> dict[str, Any]:
        """``Cgroup.stats()`` of the container plus ``status`` and ``procs`` (guest pids).

        Keys: ``memory`` {current, max, stat{...}, oom, oom_kill}, ``pids``
        {current, max}, ``cpu`` {usage_usec, user_usec, system_usec,
        nr_periods, nr_throttled, throttled_usec}; a limit of "max" is None.
        """
        return stats_from_agent(await self._call("stats_container", {"id": container_id}))

    async def remove_container(self, container_id: str) -> None:
        """Kill whatever runs, then free the container's cgroup, rootfs and streams.

        Any status is fine; every pending ``wait_process`` is answered first
        (137 for killed processes). The id can be created again afterwards.
        """
        await self._call("remove_container", {"id": container_id})

    async def exec_process(self, container_id: str, exec_id: str, process: dict[str, Any],
                           *, stdin: bool, stdout: bool = True, stderr: bool = True
                           ) -> ProcessIO:
        """Start ``process`` (an OCI process object) in the running container.

        Returns once the program has been exec'd; a program that cannot
        start raises ContainerStartError (127 not found, 126 not executable,
        1 otherwise); a container that is not running, an unknown container
        or a taken ``exec_id`` raise SandboxRequestError.
        """
        io, stdio = self._open_stdio(bool(process.get("terminal")), stdin, stdout, stderr)
        vm = self._vm()
        try:
            await vm.call("exec_process", {"id": container_id, "exec_id": exec_id,
                                           "process": process, "stdio": stdio})
        except AgentRequestError as exc:
            self._close_stdio(vm.agent, io)
            if exc.code != E_CONTAINER:
                raise SandboxRequestError.from_agent(exc) from exc
            code = exc.data.get("exit_code")
            raise ContainerStartError(exc.remote_message,
                                      code if isinstance(code, int) else 1) from exc
        except BaseException:
            self._close_stdio(vm.agent, io)
            raise
        return io

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

    async def list_processes(self, container_id: str) -> list[ProcessInfo]:
        """Every process in the container's cgroup (init, execs and their children)."""
        return processes_from_agent(await self._call("list_processes",
                                                      {"id": container_id}))

    # --- the export of a running sandbox (containers added to a pod) ---------------------
    @property
    def export(self) -> Path:
        if self.run_dir is None:
            raise SandboxError(f"sandbox {self.id} is not running")
        return self.run_dir.path / "shared"

    @property
    def vmm_pid(self) -> int:
        """The VMM's pid: what containerd gets as a task's pid (the host process it is)."""
        return self._qemu_pid()

    def _qemu_pid(self) -> int:
        pid = self._vm().qemu.vmm_pid  # QEMU itself, not a jail's waiter
        if not pid:
            raise SandboxError(f"sandbox {self.id} has no VMM process")
        return pid

    def attach_shares(self, shares: list[Share]) -> None:
        """Export more host paths to the running guest (read-only where asked)."""
        for share in shares:
            vmmounts.attach_share(self._qemu_pid(), self.export, share)

    def mount_rootfs(self, container_id: str, mounts: list[dict[str, Any]]) -> None:
        """Mount a container's rootfs (containerd's mount list) at ``<id>/rootfs``."""
        vmmounts.mount_rootfs(self._qemu_pid(), self.export, f"{container_id}/rootfs", mounts)

    def detach_container(self, container_id: str) -> None:
        """Unmount what was exported for a container, and remove its mount points."""
        if self.vm is None or self.vm.qemu.returncode is not None or self.run_dir is None:
            return  # no VM, no namespace, nothing mounted any more
        base = self.export / container_id
        targets = [p for p in base.glob("mounts/*")] + [base / "rootfs"]
        for target in targets:
            vmmounts.detach(self._qemu_pid(), self.export, str(target.relative_to(self.export)))
        shutil.rmtree(base, ignore_errors=True)

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
