"""Tasks is the shim's model of a pod: one sandbox VM and the containers (tasks) in it.

containerd speaks in tasks and processes; this module keeps their state and
turns each task call into the same verb on the :class:`Sandbox` (``Kill`` ->
``signal_process``, ``Exec``+``Start`` -> ``exec_process`` ...), publishing
the events containerd requires, in the order it requires them:
create -> start -> exit -> delete; exec-added -> exec-started -> exit;
paused/resumed; OOM before the exit of an OOM-killed process.

Proto-free on purpose: ``service`` converts containerd's messages to and
from these calls (``convert``), and ``events`` builds the event messages.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from strongbox.config import Config
from strongbox.errors import StrongboxError
from strongbox.oci.sizing import vm_size
from strongbox.oci.spec import load_bundle
from strongbox.sandbox.guestspec import guest_spec
from strongbox.sandbox.sandbox import Sandbox
from strongbox.sandbox.shares import Share, bind_shares
from strongbox.shim.address import CRI_CONTAINER_TYPE, grouping, is_pod_member
from strongbox.shim.fifo_io import FifoIO
from strongbox.shim.ttrpc.status import (
    TtrpcError,
    already_exists,
    failed_precondition,
    not_found,
)

log = logging.getLogger("strongbox.shim")

CREATED, RUNNING, STOPPED, PAUSED = "created", "running", "stopped", "paused"
OUTPUT_GRACE = 5.0
OOM_POLL = 2.0


class EventSink(Protocol):
    """Where task events go (containerd's events service, through ``events``)."""

    def task_create(self, container_id: str, bundle: str, rootfs: list[dict[str, Any]],
                    stdio: tuple[str, str, str], terminal: bool, pid: int) -> None: ...
    def task_start(self, container_id: str, pid: int) -> None: ...
    def task_exit(self, container_id: str, exec_id: str, pid: int, status: int,
                  exited_at: float) -> None: ...
    def task_delete(self, container_id: str, exec_id: str, pid: int, status: int,
                    exited_at: float) -> None: ...
    def task_oom(self, container_id: str) -> None: ...
    def exec_added(self, container_id: str, exec_id: str) -> None: ...
    def exec_started(self, container_id: str, exec_id: str, pid: int) -> None: ...
    def task_paused(self, container_id: str) -> None: ...
    def task_resumed(self, container_id: str) -> None: ...


@dataclass
class Process:
    """A task's init process or one of its execs."""

    container_id: str
    exec_id: str
    stdio: tuple[str, str, str]
    terminal: bool
    spec: dict[str, Any] = field(default_factory=dict)
    status: str = CREATED
    pid: int = 0
    exit_status: int = 0
    exited_at: float = 0.0
    io: FifoIO | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Task:
    """A container: its bundle, spec and processes."""

    id: str
    bundle: str
    spec: dict[str, Any]
    init: Process
    rootfs: list[dict[str, Any]]
    execs: dict[str, Process] = field(default_factory=dict)
    guest_pid: int = 0
    oom_kills: int = 0
    watchers: list[asyncio.Task[None]] = field(default_factory=list)

    def process(self, exec_id: str) -> Process:
        if not exec_id:
            return self.init
        proc = self.execs.get(exec_id)
        if proc is None:
            raise not_found(f"process {exec_id} of task {self.id} does not exist")
        return proc


class TaskManager:
    """Every task of this shim, in one sandbox VM (one pod)."""

    def __init__(self, config: Config, *, namespace: str, events: EventSink, root: Path,
                 state_dir: Path) -> None:
        self.config = config
        self.namespace = namespace
        self.events = events
        self.root = root
        self.state_dir = state_dir
        self.sandbox: Sandbox | None = None
        self.tasks: dict[str, Task] = {}
        self.sandbox_task: str | None = None
        self._lock = asyncio.Lock()

    # --- lookups ---------------------------------------------------------------------------
    def task(self, container_id: str) -> Task:
        task = self.tasks.get(container_id)
        if task is None:
            raise not_found(f"task {container_id} does not exist")
        return task

    def _sandbox(self) -> Sandbox:
        if self.sandbox is None:
            raise failed_precondition("the sandbox is not running")
        return self.sandbox

    # --- create ----------------------------------------------------------------------------
    async def create(self, container_id: str, bundle: str, rootfs: list[dict[str, Any]],
                     terminal: bool, stdio: tuple[str, str, str]) -> int:
        async with self._lock:
            if container_id in self.tasks:
                raise already_exists(f"task {container_id} already exists")
            spec, _ = load_bundle(bundle)
            spec["process"]["terminal"] = terminal
            annotations = spec.get("annotations") or {}
            join = self._pod_namespaces() if is_pod_member(annotations) else None
            gspec, netns = guest_spec(spec, join)
            if self.sandbox is None:
                await self._start_sandbox(container_id, annotations, spec, netns)
            sandbox = self._sandbox()
            shares, mounts = bind_shares(container_id, gspec)
            await self._export_rootfs(sandbox, container_id, bundle, rootfs, gspec)
            sandbox.attach_shares(shares)
            try:
                io = await sandbox.create_container(container_id, gspec, mounts=mounts,
                                                    overlay=False, stdin=bool(stdio[0]))
                status = await sandbox.container_status(container_id)
            except BaseException:
                sandbox.detach_container(container_id)
                raise
            init = Process(container_id, "", stdio, terminal, pid=sandbox.vmm_pid)
            task = Task(container_id, bundle, gspec, init, rootfs, guest_pid=status.pid or 0)
            init.io = FifoIO(io, *stdio)
            init.io.start()
            self.tasks[container_id] = task
            if annotations.get(CRI_CONTAINER_TYPE) == "sandbox" or self.sandbox_task is None:
                self.sandbox_task = self.sandbox_task or container_id
        self.events.task_create(container_id, bundle, rootfs, stdio, terminal, init.pid)
        return init.pid

    def _pod_namespaces(self) -> dict[str, str]:
        """Guest paths of the pod sandbox container's namespaces, for its members."""
        if self.sandbox_task is None or self.sandbox_task not in self.tasks:
            raise failed_precondition("a pod container was created before its sandbox")
        pid = self.tasks[self.sandbox_task].guest_pid
        return {kind: f"/proc/{pid}/ns/{name}" for kind, name in
                (("ipc", "ipc"), ("uts", "uts"), ("pid", "pid"))}

    async def _start_sandbox(self, container_id: str, annotations: dict[str, Any],
                             spec: dict[str, Any], netns: str | None) -> None:
        qemu = self.config.hypervisor.qemu
        memory, vcpus = vm_size(spec, default_memory_mib=qemu.default_memory,
                                default_vcpus=qemu.default_vcpus,
                                memory_margin_mib=qemu.memory_margin,
                                max_vcpus=os.cpu_count() or 1)
        key = grouping(container_id, annotations)
        from strongbox.shim.main import sandbox_name

        sandbox = Sandbox(self.config, sandbox_id=sandbox_name(self.namespace, key),
                          root=self.root, state_dir=self.state_dir)
        try:
            await sandbox.start(memory_mib=memory, vcpus=vcpus, shares=[], netns=netns)
        except BaseException:
            await sandbox.destroy()
            raise
        self.sandbox = sandbox

    async def _export_rootfs(self, sandbox: Sandbox, container_id: str, bundle: str,
                             rootfs: list[dict[str, Any]], spec: dict[str, Any]) -> None:
        if rootfs:
            sandbox.mount_rootfs(container_id, rootfs)
        else:  # already in place (no snapshotter mounts): share the bundle's rootfs
            path = spec["root"]["path"]
            source = path if os.path.isabs(path) else str(Path(bundle) / path)
            sandbox.attach_shares([Share(source, f"{container_id}/rootfs",
                                         bool(spec["root"].get("readonly")))])

    # --- start, exec -----------------------------------------------------------------------
    async def start(self, container_id: str, exec_id: str) -> int:
        task = self.task(container_id)
        proc = task.process(exec_id)
        if proc.status != CREATED:
            raise failed_precondition(f"process {exec_id or container_id} is {proc.status}, "
                                      "not created")
        sandbox = self._sandbox()
        if not exec_id:
            await sandbox.start_container(container_id)
            proc.status = RUNNING
            self.events.task_start(container_id, proc.pid)
            task.watchers.append(asyncio.create_task(self._watch_oom(task)))
        else:
            io = await sandbox.exec_process(container_id, exec_id, proc.spec,
                                            stdin=bool(proc.stdio[0]))
            proc.io = FifoIO(io, *proc.stdio)
            proc.io.start()
            proc.status = RUNNING
            self.events.exec_started(container_id, exec_id, proc.pid)
        task.watchers.append(asyncio.create_task(self._wait(task, proc)))
        return proc.pid

    async def exec(self, container_id: str, exec_id: str, terminal: bool,
                   stdio: tuple[str, str, str], spec: dict[str, Any]) -> None:
        task = self.task(container_id)
        if exec_id in task.execs:
            raise already_exists(f"exec {exec_id} already exists in task {container_id}")
        if task.init.status != RUNNING:
            raise failed_precondition(f"task {container_id} is {task.init.status}, not running")
        spec = dict(spec, terminal=terminal)
        task.execs[exec_id] = Process(container_id, exec_id, stdio, terminal, spec=spec,
                                      pid=task.init.pid)
        self.events.exec_added(container_id, exec_id)

    async def _wait(self, task: Task, proc: Process) -> None:
        try:
            status = await self._sandbox().wait_process(task.id, proc.exec_id)
            code = status.code
        except StrongboxError as exc:
            log.warning("lost process %s/%s: %s", task.id, proc.exec_id, exc)
            code = 128 + signal.SIGKILL
        if not proc.exec_id and code == 128 + signal.SIGKILL:
            await self._check_oom(task)
        if proc.io is not None:
            await proc.io.finish(OUTPUT_GRACE)
        proc.status, proc.exit_status, proc.exited_at = STOPPED, code, time.time()
        proc.exited.set()
        self.events.task_exit(task.id, proc.exec_id, proc.pid, code, proc.exited_at)

    async def _check_oom(self, task: Task) -> None:
        try:
            stats = await self._sandbox().stats_container(task.id)
        except StrongboxError:
            return
        kills = int((stats.get("memory") or {}).get("oom_kill") or 0)
        if kills > task.oom_kills:
            task.oom_kills = kills
            self.events.task_oom(task.id)

    async def _watch_oom(self, task: Task) -> None:
        while task.init.status == RUNNING:
            await asyncio.sleep(OOM_POLL)
            if task.init.status == RUNNING:
                await self._check_oom(task)

    # --- the rest of the task API ------------------------------------------------------------
    async def wait(self, container_id: str, exec_id: str) -> tuple[int, float]:
        proc = self.task(container_id).process(exec_id)
        await proc.exited.wait()
        return proc.exit_status, proc.exited_at

    async def kill(self, container_id: str, exec_id: str, signum: int, all_: bool) -> None:
        task = self.task(container_id)
        proc = task.process(exec_id)
        if proc.status == STOPPED:
            raise not_found(f"process {exec_id or container_id} is not running")
        if proc.status == CREATED and exec_id:
            raise failed_precondition(f"exec {exec_id} has not been started")
        await self._sandbox().signal_process(container_id, signum, exec_id=exec_id,
                                             all_processes=all_)

    async def delete(self, container_id: str, exec_id: str) -> tuple[int, int, float]:
        task = self.task(container_id)
        if exec_id:
            proc = task.process(exec_id)
            if proc.status == RUNNING:
                raise failed_precondition(f"exec {exec_id} is still running")
            del task.execs[exec_id]
            self.events.task_delete(container_id, exec_id, proc.pid, proc.exit_status,
                                    proc.exited_at)
            return proc.pid, proc.exit_status, proc.exited_at
        proc = task.init
        if proc.status in (RUNNING, PAUSED):
            raise failed_precondition(f"task {container_id} is {proc.status}: kill it first")
        for watcher in task.watchers:
            watcher.cancel()
        sandbox = self._sandbox()
        try:
            await sandbox.remove_container(container_id)
        except StrongboxError as exc:
            log.warning("removing %s in the guest: %s", container_id, exc)
        if proc.io is not None and proc.status == CREATED:
            await proc.io.finish(0)
        sandbox.detach_container(container_id)
        del self.tasks[container_id]
        if proc.status == CREATED:
            proc.exited_at = time.time()
        self.events.task_delete(container_id, "", proc.pid, proc.exit_status, proc.exited_at)
        return proc.pid, proc.exit_status, proc.exited_at

    def state(self, container_id: str, exec_id: str) -> dict[str, Any]:
        task = self.task(container_id)
        proc = task.process(exec_id)
        return {"id": container_id, "exec_id": exec_id, "bundle": task.bundle, "pid": proc.pid,
                "status": proc.status, "stdin": proc.stdio[0], "stdout": proc.stdio[1],
                "stderr": proc.stdio[2], "terminal": proc.terminal,
                "exit_status": proc.exit_status, "exited_at": proc.exited_at}

    async def pids(self, container_id: str) -> list[int]:
        self.task(container_id)
        processes = await self._sandbox().list_processes(container_id)
        return [p.pid for p in processes]

    async def pause(self, container_id: str) -> None:
        task = self.task(container_id)
        await self._sandbox().pause_container(container_id)
        task.init.status = PAUSED
        self.events.task_paused(container_id)

    async def resume(self, container_id: str) -> None:
        task = self.task(container_id)
        await self._sandbox().resume_container(container_id)
        task.init.status = RUNNING
        self.events.task_resumed(container_id)

    async def resize(self, container_id: str, exec_id: str, width: int, height: int) -> None:
        proc = self.task(container_id).process(exec_id)
        if proc.status == RUNNING:
            await self._sandbox().resize_pty(container_id, height, width, exec_id=exec_id)

    def close_io(self, container_id: str, exec_id: str) -> None:
        proc = self.task(container_id).process(exec_id)
        if proc.io is not None:
            proc.io.close_stdin()

    async def update(self, container_id: str, resources: dict[str, Any]) -> None:
        self.task(container_id)
        await self._sandbox().update_container(container_id, resources)

    async def stats(self, container_id: str) -> dict[str, Any]:
        self.task(container_id)
        return await self._sandbox().stats_container(container_id)

    async def shutdown(self) -> bool:
        """containerd's Shutdown: stop the VM once no task is left; True to exit."""
        if self.tasks:
            return False
        if self.sandbox is not None:
            try:
                await self.sandbox.stop()
            finally:
                await self.sandbox.destroy()
            self.sandbox = None
        return True

    async def destroy(self) -> None:
        """The shim is going away: tear the VM down whatever the tasks are doing."""
        if self.sandbox is not None:
            await self.sandbox.destroy()
            self.sandbox = None


def task_error(exc: Exception) -> TtrpcError:
    """Any failure as a status containerd understands."""
    if isinstance(exc, TtrpcError):
        return exc
    from strongbox.shim.ttrpc.status import UNKNOWN

    return TtrpcError(UNKNOWN, str(exc))
