"""A fake of :class:`strongbox.sandbox.sandbox.Sandbox` for the front doors' fast tests.

Pure logic only: the shim's TaskManager and the CLI's Monitor are tested
against it for the order of what they do (events, state records, control
answers), never for what a VM does; the VM tests stay for that. It keeps the
same status model as the real sandbox (:mod:`strongbox.status`), so a verb in
the wrong status raises the same ContainerStateError, and it validates exec
processes and resource updates with the same :mod:`strongbox.oci.spec` calls.

Each process gets streams (:class:`FakeStream`): tests push output with
``feed``/``eof``, read what the front door wrote as input with ``written``,
and end a process with :meth:`FakeSandbox.exit` (signals end it too, as
128+N, unless ``ignore_signals`` is set).
"""

from __future__ import annotations

import asyncio
import os
import signal as signals
from dataclasses import dataclass, field
from typing import Any, ClassVar

from strongbox import status as sm
from strongbox.errors import ContainerStartError
from strongbox.oci.spec import validate_process, validate_resources
from strongbox.sandbox.plan import ContainerRequest
from strongbox.sandbox.pump import ProcessIO
from strongbox.sandbox.replies import ExitStatus, ProcessInfo, SandboxRequestError


class FakeStream:
    """One stdio stream: output fed by the test, input recorded for it."""

    def __init__(self) -> None:
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self.written = bytearray()
        self.closed = asyncio.Event()
        self._eof = False

    # the host side (what a pump calls)
    async def read(self) -> bytes:
        if self._eof:
            return b""
        data = await self.chunks.get()
        if not data:
            self._eof = True
        return data

    def write(self, data: bytes) -> None:
        self.written += data

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def close_write(self) -> None:
        self.closed.set()

    # the test's side (what the guest would do)
    def feed(self, data: bytes) -> None:
        self.chunks.put_nowait(data)

    def eof(self) -> None:
        self.chunks.put_nowait(b"")


@dataclass
class FakeProcess:
    exec_id: str
    io: ProcessIO
    process: dict[str, Any]
    started: bool = False
    exit: asyncio.Future[ExitStatus] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())
    signals: list[int] = field(default_factory=list)


@dataclass
class FakeContainer:
    request: ContainerRequest
    status: sm.ContainerStatus = sm.CREATED
    processes: dict[str, FakeProcess] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    oom_kills: int = 0


def _io(terminal: bool, stdin: bool) -> ProcessIO:
    return ProcessIO(FakeStream() if stdin else None, FakeStream(),
                     None if terminal else FakeStream(), terminal)


class FakeSandbox:
    """In-memory containers and processes behind the Sandbox interface."""

    instances: ClassVar[list[FakeSandbox]] = []

    def __init__(self, config: Any = None, *, sandbox_id: str = "fake", root: Any = None,
                 state_dir: Any = None) -> None:
        self.id = sandbox_id
        self.containers: dict[str, FakeContainer] = {}
        self.calls: list[tuple[str, ...]] = []
        self.launched = False
        self.destroyed = False
        self.stopped = False
        #: This process: its network namespace is what a monitor joins (a no-op here).
        self.vmm_pid = os.getpid()
        #: Make the next start_container fail like a missing binary.
        self.fail_start: ContainerStartError | None = None
        self.ignore_signals = False
        FakeSandbox.instances.append(self)

    # --- launch path ----------------------------------------------------------------------
    async def launch(self, request: ContainerRequest, *, timeout: float | None = None
                     ) -> ProcessIO:
        self.calls.append(("launch", request.id))
        self.launched = True
        return self._create(request)

    async def add_container(self, request: ContainerRequest) -> ProcessIO:
        self.calls.append(("add_container", request.id))
        return self._create(request)

    def _create(self, request: ContainerRequest) -> ProcessIO:
        if request.id in self.containers:
            raise SandboxRequestError(f"container {request.id!r} already exists", "exists")
        container = self.containers[request.id] = FakeContainer(request)
        io = _io(bool(request.spec["process"].get("terminal")), request.stdin)
        container.processes[""] = FakeProcess("", io, request.spec["process"])
        return io

    def _get(self, cid: str, verb: str) -> FakeContainer:
        container = self.containers.get(cid)
        if container is None:
            raise SandboxRequestError(f"container {cid!r} does not exist", "not_found")
        sm.require(container.status, verb, cid)
        return container

    def status(self, cid: str) -> sm.ContainerStatus:
        container = self.containers.get(cid)
        return container.status if container is not None else sm.STOPPED

    # --- what a test does to the "guest" -------------------------------------------------
    def process(self, cid: str, exec_id: str = "") -> FakeProcess:
        return self.containers[cid].processes[exec_id]

    def exit(self, cid: str, exec_id: str = "", code: int = 0, sig: int | None = None) -> None:
        """The process ends (its output streams reach EOF)."""
        proc = self.process(cid, exec_id)
        for stream in (proc.io.stdout, proc.io.stderr):
            if isinstance(stream, FakeStream):
                stream.eof()
        if not proc.exit.done():
            proc.exit.set_result(ExitStatus(code, sig))

    # --- verbs ---------------------------------------------------------------------------
    async def start_container(self, cid: str) -> None:
        self.calls.append(("start_container", cid))
        container = self._get(cid, sm.START)
        if self.fail_start is not None:
            container.status = sm.STOPPED
            error, self.fail_start = self.fail_start, None
            self.exit(cid, "", error.exit_code)
            raise error
        container.processes[""].started = True
        container.status = sm.RUNNING

    async def pause_container(self, cid: str) -> None:
        self.calls.append(("pause_container", cid))
        container = self._get(cid, sm.PAUSE)
        container.status = sm.PAUSED

    async def resume_container(self, cid: str) -> None:
        self.calls.append(("resume_container", cid))
        container = self._get(cid, sm.RESUME)
        container.status = sm.RUNNING

    async def update_container(self, cid: str, resources: object) -> dict[str, Any]:
        checked = validate_resources(resources)
        self.calls.append(("update_container", cid))
        container = self._get(cid, sm.UPDATE)
        container.resources.update(checked)
        return container.resources

    async def stats_container(self, cid: str) -> dict[str, Any]:
        container = self._get(cid, sm.STATS)
        return {"status": container.status, "procs": [1],
                "memory": {"current": 1 << 20, "max": None, "oom_kill": container.oom_kills},
                "pids": {"current": 1, "max": None}, "cpu": {"usage_usec": 10}}

    async def oom_kills(self, cid: str) -> int:
        return self.containers[cid].oom_kills

    async def remove_container(self, cid: str, *, force: bool = False) -> None:
        self.calls.append(("remove_container", cid))
        container = self._get(cid, sm.DESTROY if force else sm.DELETE)
        for exec_id in list(container.processes):
            self.exit(cid, exec_id, 137, signals.SIGKILL)
        del self.containers[cid]

    async def exec_process(self, cid: str, exec_id: str, process: object, *,
                           stdin: bool) -> ProcessIO:
        checked = validate_process(process)
        self.calls.append(("exec_process", cid, exec_id))
        container = self._get(cid, sm.EXEC)
        if exec_id in container.processes:
            raise SandboxRequestError(f"process {exec_id!r} already exists", "exists")
        io = _io(bool(checked.get("terminal")), stdin)
        container.processes[exec_id] = FakeProcess(exec_id, io, checked, started=True)
        return io

    async def wait_process(self, cid: str, exec_id: str = "") -> ExitStatus:
        proc = self.process(cid, exec_id)
        try:
            return await asyncio.shield(proc.exit)
        finally:
            container = self.containers.get(cid)
            if not exec_id and container is not None:
                container.status = sm.require(container.status, sm.EXIT, cid)

    async def signal_process(self, cid: str, signal: int, *, exec_id: str = "",
                             all_processes: bool = False) -> None:
        self.calls.append(("signal_process", cid, exec_id, str(signal)))
        container = self._get(cid, sm.KILL)
        targets = list(container.processes) if all_processes else [exec_id]
        for target in targets:
            proc = container.processes[target]
            proc.signals.append(signal)
            if not self.ignore_signals and signal in (signals.SIGKILL, signals.SIGTERM):
                self.exit(cid, target, 128 + signal, signal)

    async def resize_pty(self, cid: str, rows: int, cols: int, exec_id: str = "") -> None:
        self.calls.append(("resize_pty", cid, exec_id, f"{rows}x{cols}"))
        self._get(cid, sm.RESIZE)

    async def list_processes(self, cid: str) -> list[ProcessInfo]:
        self._get(cid, sm.PS)
        return [ProcessInfo(pid=7, ppid=1, uid=0, gid=0, state="S", comm="sleep",
                            args=("sleep", "1000"), ns_pid=1, tty_nr=0, start_time_ticks=5,
                            start_time_s=0.05, elapsed_s=1.0, cpu_time_s=0.0)]

    async def stop(self, timeout: float = 10.0) -> None:
        self.stopped = True

    async def destroy(self) -> None:
        self.destroyed = True
        for cid, container in self.containers.items():
            container.status = sm.STOPPED
            for exec_id in container.processes:
                self.exit(cid, exec_id, 137, signals.SIGKILL)
