"""Tasks is the shim's model of a pod: one sandbox VM and the containers (tasks) in it.

containerd speaks in tasks and processes; this module keeps their
containerd-facing state (stdio paths, exit statuses, exec ids) and turns each
task call into the same verb on the :class:`Sandbox`, which owns the launch
path, the status model and input validation for both front doors (``Create``
-> ``Sandbox.launch`` or ``add_container``, ``Kill`` -> ``signal_process``,
``Exec``+``Start`` -> ``exec_process`` ...). It publishes the events containerd
requires, in the order it requires them: create -> start -> exit -> delete;
exec-added -> exec-started -> exit; paused/resumed; OOM before the exit of an
OOM-killed process.

A process's status here is containerd's view of it (:mod:`strongbox.status`
values): the init's follows the sandbox's after each verb and turns stopped
only once its exit has been published; an exec is created by ``Exec`` and
runs from ``Start``.

Proto-free on purpose: ``service`` converts containerd's messages to and
from these calls (``convert``), and ``events`` builds the event messages.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from strongbox import status as sm
from strongbox.config import Config
from strongbox.errors import ContainerStateError, SandboxError, StrongboxError
from strongbox.oci.spec import load_bundle
from strongbox.sandbox.plan import ContainerRequest
from strongbox.sandbox.pump import StdioPump
from strongbox.sandbox.sandbox import Sandbox
from strongbox.shim.address import grouping, is_pod_member, sandbox_name
from strongbox.shim.fifo_io import fifo_pump
from strongbox.shim.ttrpc.status import already_exists, failed_precondition, not_found
from strongbox.timeline import Timeline

log = logging.getLogger("strongbox.shim")

#: How often a running task's OOM-kill counter is read.
OOM_POLL = 2.0
#: Makes the sandbox of a pod (tests give a fake; the shim a real :class:`Sandbox`).
SandboxFactory = Callable[..., Sandbox]


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
    """A task's init process or one of its execs, as containerd sees it."""

    container_id: str
    exec_id: str
    stdio: tuple[str, str, str]
    terminal: bool
    spec: dict[str, Any] = field(default_factory=dict)
    status: sm.ContainerStatus = sm.CREATED
    pid: int = 0
    exit_status: int = 0
    exited_at: float = 0.0
    io: StdioPump | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str:
        return f"exec {self.exec_id}" if self.exec_id else f"task {self.container_id}"


@dataclass
class Task:
    """A container: its bundle and processes."""

    id: str
    bundle: str
    init: Process
    rootfs: list[dict[str, Any]]
    execs: dict[str, Process] = field(default_factory=dict)
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
                 state_dir: Path, sandbox_factory: SandboxFactory = Sandbox) -> None:
        self.config = config
        self.namespace = namespace
        self.events = events
        self.root = root
        self.state_dir = state_dir
        self.sandbox_factory = sandbox_factory
        self.sandbox: Sandbox | None = None
        self.tasks: dict[str, Task] = {}
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
            spec, rootfs_dir = load_bundle(bundle)
            spec["process"]["terminal"] = terminal
            annotations = spec.get("annotations") or {}
            request = ContainerRequest(id=container_id, spec=spec, rootfs=rootfs_dir,
                                       rootfs_mounts=tuple(rootfs), stdin=bool(stdio[0]),
                                       pod_member=is_pod_member(annotations), bundle=bundle)
            if self.sandbox is None:
                sandbox = self.sandbox_factory(
                    self.config, sandbox_id=sandbox_name(self.namespace,
                                                         grouping(container_id, annotations)),
                    root=self.root, state_dir=self.state_dir)
                io = await sandbox.launch(request)
                self.sandbox = sandbox
            else:
                io = await self.sandbox.add_container(request)
            sandbox = self._sandbox()
            init = Process(container_id, "", stdio, terminal, pid=sandbox.vmm_pid)
            try:
                init.io = fifo_pump(io, *stdio)
            except BaseException:
                await sandbox.remove_container(container_id, force=True)
                raise
            init.io.start()
            self.tasks[container_id] = Task(container_id, bundle, init, rootfs)
        self.events.task_create(container_id, bundle, rootfs, stdio, terminal, init.pid)
        return init.pid

    # --- start, exec -----------------------------------------------------------------------
    async def start(self, container_id: str, exec_id: str) -> int:
        task = self.task(container_id)
        proc = task.process(exec_id)
        sandbox = self._sandbox()
        if not exec_id:
            await sandbox.start_container(container_id)  # a failed start stays "created"
            proc.status = sandbox.status(container_id)
            self.events.task_start(container_id, proc.pid)
            task.watchers.append(asyncio.create_task(self._watch_oom(task)))
        else:
            sm.require(proc.status, sm.START, container_id)
            io = await sandbox.exec_process(container_id, exec_id, proc.spec,
                                            stdin=bool(proc.stdio[0]))
            proc.io = fifo_pump(io, *proc.stdio)
            proc.io.start()
            proc.status = sm.RUNNING
            self.events.exec_started(container_id, exec_id, proc.pid)
        task.watchers.append(asyncio.create_task(self._wait(task, proc)))
        return proc.pid

    async def exec(self, container_id: str, exec_id: str, terminal: bool,
                   stdio: tuple[str, str, str], spec: dict[str, Any]) -> None:
        """containerd's Exec: record the process; it starts with Start."""
        task = self.task(container_id)
        if exec_id in task.execs:
            raise already_exists(f"exec {exec_id} already exists in task {container_id}")
        sm.require(task.init.status, sm.EXEC, container_id)
        task.execs[exec_id] = Process(container_id, exec_id, stdio, terminal,
                                      spec=dict(spec, terminal=terminal), pid=task.init.pid)
        self.events.exec_added(container_id, exec_id)

    async def _wait(self, task: Task, proc: Process) -> None:
        steps = Timeline(proc.exec_id or task.id)
        try:
            if self.sandbox is None:  # the shim is going away: the VM is gone
                raise SandboxError("the sandbox was destroyed")
            status = await self.sandbox.wait_process(task.id, proc.exec_id)
            code = status.code
        except StrongboxError as exc:
            log.warning("lost process %s/%s: %s", task.id, proc.exec_id, exc)
            code = 128 + signal.SIGKILL
        if not proc.exec_id and code == 128 + signal.SIGKILL:
            await self._check_oom(task)
        steps.lap("exit seen", f"status {code}, since start")
        if proc.io is not None:
            await proc.io.finish()
            steps.lap("output flushed")
        proc.status = sm.require(proc.status, sm.EXIT, task.id)
        proc.exit_status, proc.exited_at = code, time.time()
        proc.exited.set()
        self.events.task_exit(task.id, proc.exec_id, proc.pid, code, proc.exited_at)

    async def _check_oom(self, task: Task) -> None:
        if self.sandbox is None:
            return
        try:
            kills = await self.sandbox.oom_kills(task.id)
        except StrongboxError:
            return
        if kills > task.oom_kills:
            task.oom_kills = kills
            self.events.task_oom(task.id)

    async def _watch_oom(self, task: Task) -> None:
        """Poll the OOM-kill counter for the init's whole life (paused included)."""
        while task.init.status in (sm.RUNNING, sm.PAUSED):
            await asyncio.sleep(OOM_POLL)
            if task.init.status == sm.RUNNING:
                await self._check_oom(task)

    # --- the rest of the task API ------------------------------------------------------------
    async def wait(self, container_id: str, exec_id: str) -> tuple[int, float]:
        proc = self.task(container_id).process(exec_id)
        await proc.exited.wait()
        return proc.exit_status, proc.exited_at

    async def kill(self, container_id: str, exec_id: str, signum: int, all_: bool) -> None:
        task = self.task(container_id)
        proc = task.process(exec_id)
        if proc.status == sm.STOPPED:  # containerd: a finished process is "not found"
            raise not_found(f"process {exec_id or container_id} is not running")
        if proc.status == sm.CREATED and exec_id:
            raise failed_precondition(f"exec {exec_id} has not been started")
        try:
            await self._sandbox().signal_process(container_id, signum, exec_id=exec_id,
                                                 all_processes=all_)
        except ContainerStateError as exc:
            if exc.current != sm.STOPPED:
                raise
            # It ended and its exit is on its way: "already finished" is NotFound to
            # containerd, which then waits for the exit (a forced delete does).
            raise not_found(f"process {exec_id or container_id} already finished") from None

    async def delete(self, container_id: str, exec_id: str) -> tuple[int, int, float]:
        task = self.task(container_id)
        proc = task.process(exec_id)
        sm.require(proc.status, sm.DELETE, container_id)  # containerd kills first
        if exec_id:
            del task.execs[exec_id]
        else:
            for watcher in task.watchers:
                watcher.cancel()
            try:
                await self._sandbox().remove_container(container_id)
            except StrongboxError as exc:
                log.warning("removing %s in the guest: %s", container_id, exc)
            if proc.io is not None and proc.status == sm.CREATED:
                await proc.io.finish(0)
            del self.tasks[container_id]
            if proc.status == sm.CREATED:  # never ran: a pending Wait answers now
                proc.exited_at = time.time()
                proc.exited.set()
        self.events.task_delete(container_id, exec_id, proc.pid, proc.exit_status,
                                proc.exited_at)
        return proc.pid, proc.exit_status, proc.exited_at

    def state(self, container_id: str, exec_id: str) -> dict[str, Any]:
        task = self.task(container_id)
        proc = task.process(exec_id)
        return {"id": container_id, "exec_id": exec_id, "bundle": task.bundle, "pid": proc.pid,
                "status": proc.status, "stdin": proc.stdio[0], "stdout": proc.stdio[1],
                "stderr": proc.stdio[2], "terminal": proc.terminal,
                "exit_status": proc.exit_status, "exited_at": proc.exited_at}

    async def pids(self, container_id: str) -> list[int]:
        """The host pid standing for the task: the VMM's (the pid its processes report).

        containerd and its clients read these as host pids (``docker top``
        filters the host's ``ps -ef`` by them, ``ctr task ps`` prints them); a
        guest pid would name an unrelated host process. The guest is still
        asked, so a task whose VM is gone or that is not running is refused
        as before.
        """
        task = self.task(container_id)
        await self._sandbox().list_processes(container_id)
        return [task.init.pid]

    async def pause(self, container_id: str) -> None:
        await self._freeze(container_id, True)
        self.events.task_paused(container_id)

    async def resume(self, container_id: str) -> None:
        await self._freeze(container_id, False)
        self.events.task_resumed(container_id)

    async def _freeze(self, container_id: str, frozen: bool) -> None:
        task = self.task(container_id)
        sandbox = self._sandbox()
        try:
            if frozen:
                await sandbox.pause_container(container_id)
            else:
                await sandbox.resume_container(container_id)
        finally:
            now = sandbox.status(container_id)
            if sm.STOPPED not in (now, task.init.status):  # stopped once the exit is out
                task.init.status = now

    async def resize(self, container_id: str, exec_id: str, width: int, height: int) -> None:
        proc = self.task(container_id).process(exec_id)
        if proc.status == sm.RUNNING:
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
