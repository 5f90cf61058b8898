"""Sandbox creates and manipulates microVM sandboxes and the containers in them.

One sandbox is one VM, one run directory and one agent connection; it hosts one container (the
CLI) or the containers of a pod (the shim). It is the one launch path of both front doors:
:meth:`Sandbox.launch` sizes the VM from the first container, plans its spec and shares
(:mod:`.plan`), boots or clones the VM (:mod:`.boot`) and creates the container;
:meth:`Sandbox.add_container` adds a pod member to the running VM. The other verbs are the
agent's, with the same names (:mod:`strongbox.protocol.verbs`):

``create_container`` (in launch/add), ``start_container``, ``container_status``,
``pause_container``, ``resume_container``, ``update_container``, ``stats_container``,
``remove_container``; for processes (the init has exec id ""): ``exec_process``,
``wait_process``, ``signal_process``, ``resize_pty``, ``list_processes``, ``file_transfer``.

The sandbox keeps each container's status (:mod:`strongbox.status`) and checks every verb
against it before a request leaves the host, so both front doors get the same rules and
:class:`ContainerStateError`; the agent checks again against the guest's truth, and its
``invalid_state`` answer becomes the same error. Exec processes (:func:`.plan.check_exec`) and
resource updates are validated here for both front doors; agent replies are validated into the
models of :mod:`.replies` (another refusal raises :class:`SandboxRequestError`; an exec that
failed, :class:`ContainerStartError`). Each container's OCI hooks run here too, for both front
doors (:mod:`.hooks`), and each phase is timed (:mod:`strongbox.timeline`).
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Any

from strongbox import status as sm
from strongbox.config import Config
from strongbox.errors import AgentError, AgentRequestError, SandboxError
from strongbox.hypervisor import open_vmm
from strongbox.oci.spec import validate_resources
from strongbox.protocol import E_CONTAINER, E_STATE, verbs
from strongbox.protocol.verbs import Verb
from strongbox.sandbox.agent_client import FOREVER
from strongbox.sandbox.attach import Attachments
from strongbox.sandbox.boot import Booted, boot
from strongbox.sandbox.hooks import ContainerHooks, HookFailed, HookPlace
from strongbox.sandbox.hostcgroup import HostCgroup
from strongbox.sandbox.hosted import Hosted
from strongbox.sandbox.network.egress import policy
from strongbox.sandbox.plan import (
    ContainerPlan,
    ContainerRequest,
    check_exec,
    create_params,
    exec_params,
    file_params,
    plan_container,
    pod_namespaces,
    vm_size_for,
)
from strongbox.sandbox.pump import ProcessIO
from strongbox.sandbox.replies import ContainerState as ContainerState
from strongbox.sandbox.replies import ExitStatus as ExitStatus
from strongbox.sandbox.replies import ProcessInfo as ProcessInfo
from strongbox.sandbox.replies import SandboxRequestError as SandboxRequestError
from strongbox.sandbox.replies import (
    malformed,
    processes_from_agent,
    start_error,
    state_error,
    stats_from_agent,
)
from strongbox.sandbox.vm import GuestVM
from strongbox.timeline import Timeline, span

log = logging.getLogger("strongbox.sandbox")
#: Seconds a broken agent channel waits for the VMM's exit before it counts as a fault.
VM_EXIT_GRACE = 2.0


class Sandbox:
    """A microVM for containers: :meth:`launch` it, then the container verbs."""

    def __init__(self, config: Config, *, sandbox_id: str, root: Path, state_dir: Path,
                 hook_place: HookPlace | None = None) -> None:
        self.config, self.id, self.root, self.state_dir = config, sandbox_id, root, state_dir
        self.images = state_dir / "images"  # the image cache: rootfs images (imagedisk.py)
        self.vmm = open_vmm(config, state_dir)
        self.booted: Booted | None = None
        self.containers: dict[str, Hosted] = {}
        self.hook_place = hook_place  # the CLI's monitor stands for its container
        self.attached = Attachments(hook_place.child_setup if hook_place else None)
        self.start_s = 0.0  # how long the launch took, boot and first container

    @property
    def vm(self) -> GuestVM | None:
        return self.booted.vm if self.booted is not None else None

    # --- the launch path --------------------------------------------------------------------
    async def launch(self, request: ContainerRequest, *, timeout: float | None = None,
                     pool: bool = True) -> ProcessIO:
        """Boot (or take from the warm pool, if ``pool``) the VM for ``request`` and create
        it, stopped at its start barrier: sized from the request's limits, in the network
        namespace and host cgroup its spec names. On failure nothing is left (no VMM...)."""
        if self.booted is not None:
            raise SandboxError(f"sandbox {self.id} is running already")
        if request.pod_member:
            raise SandboxError("a pod container was created before its sandbox container")
        shape = self.vmm.shape()
        plan = plan_container(request, block_devices=shape.block_devices, images=self.images)
        memory, vcpus = vm_size_for(plan.spec, shape)
        egress = policy(request.spec.get("annotations") or {}, self.config.network.egress_allow)
        started = time.monotonic()
        self.booted = await boot(self.config, self.vmm, name=self.id, root=self.root,
                                 state_dir=self.state_dir, memory_mib=memory, vcpus=vcpus,
                                 shares=[] if plan.rootfs_mounts else plan.shares,
                                 netns=plan.netns, timeout=timeout, cgroup=HostCgroup.for_spec(
                                     request.spec, self.config, self.id, memory),
                                 owner_joins_netns=self.hook_place is not None, pool=pool,
                                 disks=plan.disks, hotplug=shape.hotplug_slots > 0,
                                 enter_host=self.attached.enter_host, egress=egress)
        self.booted.vm.watch(self._vm_exited)
        self.booted.netsync.watch(self.config.network.enable_netmon)
        try:  # a pooled VM was running before its shares were known: they are attached now
            io = await self._create(request, plan, exported=not plan.rootfs_mounts
                                    and not self.booted.pooled)
            self.start_s = time.monotonic() - started
            await self.booted.serve(self)
            return io
        except BaseException:
            await self.destroy()
            raise

    async def add_container(self, request: ContainerRequest) -> ProcessIO:
        """Create another container (a pod member) in the running VM.

        A pod member joins the ipc, uts and pid namespaces of the sandbox's
        first container; its network is the sandbox's.
        """
        self._vm()
        first = next(iter(self.containers.values()), None)
        join = pod_namespaces(first.guest_pid if first else 0) if request.pod_member else None
        shape = self.vmm.shape()  # a running VM takes a disk only by hotplug
        return await self._create(request, plan_container(request, join, block_devices=(
            shape.block_devices and shape.hotplug_slots > 0), images=self.images),
            exported=False)

    async def _create(self, request: ContainerRequest, plan: ContainerPlan, *, exported: bool
                      ) -> ProcessIO:
        cid = request.id
        if cid in self.containers:
            raise SandboxRequestError(f"container {cid!r} already exists", "exists")
        steps = Timeline(cid)
        hosted = self.containers[cid] = Hosted(
            cid, hooks=ContainerHooks.of(cid, request.spec, request.bundle, self.hook_place),
            annotations=dict(request.spec.get("annotations") or {}))
        try:
            steps.lap("rootfs attached", await self.attached.attach(self.booted, plan,
                                                                   exported=exported))
            io, stdio = self._open_stdio(bool(plan.spec["process"].get("terminal")),
                                         request.stdin)
            try:
                data = await self._call(verbs.CREATE_CONTAINER, cid,
                                        create_params(request, plan, stdio))
            except BaseException:
                self._close_stdio(io)
                raise
        except BaseException:
            del self.containers[cid]
            await self.attached.detach(self.booted, cid, alive=self._vm_alive(), last=False)
            raise
        pid = data.get("pid") if isinstance(data, dict) else None
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise malformed("create answer", data)
        hosted.guest_pid = pid
        hosted.status = sm.require(hosted.status, sm.CREATE, cid)
        steps.lap("container created")
        try:
            await hosted.hooks.creating(self.vmm_pid)
        except HookFailed:  # the creation failed: tear it down (poststop runs there)
            self._close_stdio(io)
            await self.remove_container(cid, force=True)
            raise
        return io

    def _vm_alive(self) -> bool:
        return self.vm is not None and self.vm.alive

    def _vm_exited(self, status: int | None) -> None:
        """The VMM died (``status``; None: we end it): its containers stopped (GuestVM.watch)."""
        if status is not None:
            log.warning("sandbox %s: the VM exited (status %d); its containers stopped",
                        self.id, status)
        for hosted in self.containers.values():
            hosted.status = sm.STOPPED

    # --- talking to the agent ---------------------------------------------------------------
    def _vm(self) -> GuestVM:
        if (vm := self.vm) is None or vm.agent is None:
            raise SandboxError(f"sandbox {self.id} is not running")
        return vm

    async def _call(self, verb: Verb, container_id: str, params: dict[str, Any],
                    timeout: float | None = None, operation: str = "") -> Any:
        """One agent request; its refusals as the host's errors (state errors as the model's)."""
        try:
            return await self._vm().call(verb, params, timeout=timeout)
        except AgentRequestError as exc:
            if exc.code == E_STATE and operation:
                error = state_error(exc, container_id, operation)
                if container_id in self.containers:  # the guest knows better: follow it
                    self.containers[container_id].status = sm.ContainerStatus(error.current)
                raise error from exc
            raise SandboxRequestError.from_agent(exc) from exc

    def _open_stdio(self, terminal: bool, stdin: bool) -> tuple[ProcessIO, dict[str, Any]]:
        agent = self._vm().agent
        assert agent is not None
        return agent.open_process_streams(terminal=terminal, stdin=stdin)

    def _close_stdio(self, io: ProcessIO) -> None:
        """Forget the streams of a process that never started."""
        if (vm := self.vm) is not None and vm.agent is not None:
            vm.agent.close_process_streams(io)

    def _require(self, container_id: str, verb: str = "") -> Hosted:
        """The container, if its status allows ``verb`` (else ContainerStateError)."""
        hosted = self.containers.get(container_id)
        if hosted is None:
            raise SandboxRequestError(f"container {container_id!r} does not exist", "not_found")
        if verb:
            sm.require(hosted.status, verb, container_id)
        return hosted

    def status(self, container_id: str) -> sm.ContainerStatus:
        """The container's status as the host last saw it (never asks the guest)."""
        hosted = self.containers.get(container_id)
        return hosted.status if hosted is not None else sm.STOPPED

    # --- container verbs ----------------------------------------------------------------------
    async def start_container(self, container_id: str) -> None:
        """Let the created container's process run; raises ContainerStartError if exec fails."""
        hosted, steps = self._require(container_id, sm.START), Timeline(container_id)
        if self.booted is not None:  # a hook may have added an interface since create
            await self.booted.netsync.sync()
        try:
            await self._call(verbs.START_CONTAINER, container_id, {"id": container_id},
                             hosted.hooks.start_timeout(self._vm().request_timeout), sm.START)
        except SandboxRequestError as exc:
            if exc.code != E_CONTAINER:
                raise
            hosted.status = sm.STOPPED
            raise start_error(exc) from exc
        if hosted.status == sm.CREATED:  # else its wait saw it exit already: it stays stopped
            hosted.status = sm.require(hosted.status, sm.START, container_id)
        steps.lap("process started")
        await hosted.hooks.started(self.vmm_pid)

    async def container_status(self, container_id: str) -> ContainerState:
        """What the guest says of the container (status, init's guest pid, exit code)."""
        return ContainerState.from_agent(await self._call(
            verbs.CONTAINER_STATUS, container_id, {"id": container_id}))

    async def pause_container(self, container_id: str) -> None:
        """Freeze every process of the running container (its cgroup)."""
        await self._freezer(container_id, sm.PAUSE, verbs.PAUSE_CONTAINER)

    async def resume_container(self, container_id: str) -> None:
        await self._freezer(container_id, sm.RESUME, verbs.RESUME_CONTAINER)

    async def _freezer(self, container_id: str, operation: str, verb: Verb) -> None:
        hosted = self._require(container_id, operation)
        await self._call(verb, container_id, {"id": container_id}, operation=operation)
        hosted.status = sm.require(hosted.status, operation, container_id)

    async def update_container(self, container_id: str, resources: object) -> dict[str, Any]:
        """Apply OCI ``linux.resources`` (memory, pids, cpu, validated as config-linux.md
        says: a ConfigError names the field) now; returns the merged resources."""
        checked = validate_resources(resources)
        self._require(container_id, sm.UPDATE)
        data = await self._call(verbs.UPDATE_CONTAINER, container_id,
                                {"id": container_id, "resources": checked},
                                operation=sm.UPDATE)
        if not isinstance(data, dict) or not isinstance(data.get("resources"), dict):
            raise malformed("update answer", data)
        merged: dict[str, Any] = data["resources"]
        return merged

    async def stats_container(self, container_id: str) -> dict[str, Any]:
        """``Cgroup.stats()`` of the container plus ``status`` and ``procs`` (guest pids):
        ``memory`` {current, max, stat{...}, oom, oom_kill}, ``pids`` {current, max}, ``cpu``
        {usage_usec, user_usec, system_usec, nr_periods, nr_throttled, throttled_usec}."""
        self._require(container_id, sm.STATS)
        return stats_from_agent(await self._call(verbs.STATS_CONTAINER, container_id,
                                                 {"id": container_id}))

    async def oom_kills(self, container_id: str) -> int:
        """How many processes the guest's OOM killer took from the container so far; unlike
        ``stats_container`` also once it stopped (was an OOM kill the init's end?)."""
        self._require(container_id)
        stats = stats_from_agent(await self._call(verbs.STATS_CONTAINER, container_id,
                                                  {"id": container_id}))
        return int((stats.get("memory") or {}).get("oom_kill") or 0)

    async def remove_container(self, container_id: str, *, force: bool = False) -> None:
        """Kill whatever runs, free the container's cgroup, rootfs, streams and export; without
        ``force`` it must be created or stopped. Every pending ``wait_process`` is answered
        first (137 for killed processes). The id can be created again afterwards."""
        hosted = self._require(container_id, sm.DESTROY if force else sm.DELETE)
        try:
            if self._vm_alive():  # a dead VM's containers went with it
                await self._call(verbs.REMOVE_CONTAINER, container_id, {"id": container_id})
        finally:
            self.containers.pop(container_id, None)
            await self.attached.detach(self.booted, container_id, alive=self._vm_alive(),
                                       last=not self.containers)
        await hosted.hooks.stopped(self.vmm_pid if self._vm_alive() else 0)

    # --- process verbs ----------------------------------------------------------------------
    async def exec_process(self, container_id: str, exec_id: str, process: object, *,
                           stdin: bool) -> ProcessIO:
        """Start ``process`` (an OCI process, validated here) in the running container, once
        exec'd; ContainerStartError (127 not found, 126 not executable, 1 otherwise) if it
        cannot be; ContainerStateError when not running; SandboxRequestError for an unknown
        container or a taken ``exec_id``; ConfigError for a malformed process."""
        checked = check_exec(container_id, process, exec_id=exec_id)  # shape and size
        return await self._start_process(verbs.EXEC_PROCESS, container_id, exec_params(
            container_id, exec_id, checked, {}), bool(checked.get("terminal")), stdin)

    async def file_transfer(self, container_id: str, exec_id: str, op: str, path: str, *,
                            mode: int = 0o644) -> ProcessIO:
        """One file operation in the running container's root (``agent/files.py``), carried
        like an exec: its data on stdin (write) or stdout, its errno as its exit status."""
        params = file_params(container_id, exec_id, op, path, mode)  # shape and size
        return await self._start_process(verbs.FILE_TRANSFER, container_id, params, False,
                                         True)

    async def _start_process(self, verb: Verb, container_id: str, params: dict[str, Any],
                             terminal: bool, stdin: bool) -> ProcessIO:
        self._require(container_id, sm.EXEC)
        io, params["stdio"] = self._open_stdio(terminal, stdin)
        try:
            await self._call(verb, container_id, params, operation=sm.EXEC)
        except SandboxRequestError as exc:
            self._close_stdio(io)
            if exc.code != E_CONTAINER:
                raise
            raise start_error(exc) from exc
        except BaseException:
            self._close_stdio(io)
            raise
        return io

    async def wait_process(self, container_id: str, exec_id: str = "") -> ExitStatus:
        """How the process ended (waits as long as it runs). The init's end stops the
        container. When the VM dies under it, every process in it ended as if by SIGKILL."""
        try:
            data = await self._call(verbs.WAIT_PROCESS, container_id,
                                    {"id": container_id, "exec_id": exec_id}, timeout=FOREVER)
            return ExitStatus.from_agent(data)
        except AgentError:  # the channel broke: usually because the VMM is dying
            vm = self.vm
            if vm is not None and await vm.vmm.wait_exit(VM_EXIT_GRACE):
                return ExitStatus(128 + signal.SIGKILL, signal.SIGKILL)
            raise
        finally:
            hosted = self.containers.get(container_id)
            if not exec_id and hosted is not None:
                hosted.status = sm.require(hosted.status, sm.EXIT, container_id)

    async def signal_process(self, container_id: str, signal: int, *, exec_id: str = "",
                             all_processes: bool = False) -> None:
        self._require(container_id, sm.KILL)
        await self._call(verbs.SIGNAL_PROCESS, container_id,
                         {"id": container_id, "exec_id": exec_id, "signal": signal,
                          "all": all_processes}, operation=sm.KILL)

    async def resize_pty(self, container_id: str, rows: int, cols: int,
                         exec_id: str = "") -> None:
        self._require(container_id, sm.RESIZE)
        await self._call(verbs.RESIZE_PTY, container_id, {
            "id": container_id, "exec_id": exec_id, "rows": rows, "cols": cols})

    async def list_processes(self, container_id: str) -> list[ProcessInfo]:
        """Every process in the container's cgroup (init, execs and their children)."""
        self._require(container_id, sm.PS)
        return processes_from_agent(await self._call(verbs.LIST_PROCESSES, container_id,
                                                     {"id": container_id}))

    # --- the VM ------------------------------------------------------------------------------
    @property
    def export(self) -> Path:
        if self.booted is None:
            raise SandboxError(f"sandbox {self.id} is not running")
        return self.booted.export

    @property
    def vmm_pid(self) -> int:
        """The VMM's pid: what containerd gets as a task's pid (the host process it is)."""
        pid = self._vm().vmm.vmm_pid  # the VMM itself, not a jail's waiter
        if not pid:
            raise SandboxError(f"sandbox {self.id} has no VMM process")
        return pid

    async def stop(self, timeout: float = 10.0) -> None:
        """Power the VM off (the agent first, the VMM by force if needed)."""
        if self.vm is not None:
            await self.vm.shutdown(timeout)

    async def destroy(self) -> None:
        """Release everything: no VMM, no run directory, whatever state we are in."""
        booted, self.booted = self.booted, None
        self._vm_exited(None)
        if booted is None:
            return
        with span(self.id, "teardown", "VMM, network, cgroup, run directory"):
            try:
                await booted.vm.destroy()
            finally:
                booted.release()
        for hosted in self.containers.values():  # deleted with the VM: their poststop hooks
            hooks, hosted.hooks = hosted.hooks, ContainerHooks("", "")
            await hooks.stopped(0)
