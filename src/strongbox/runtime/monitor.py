"""Monitor is the host process that owns one container's sandbox for its whole life.

To its caller the monitor *is* the container: its pid goes to --pid-file,
it holds the stdio (or console) given to ``create``, and it exits with the
container's status (a death by signal is mirrored), so a subreaper such as
conmon learns how the container ended by waiting for it. It serves the
other CLI commands on the container's control socket (``start``, ``kill``,
``exec``, ``ps``, ``pause`` ...), translating each into the same verb on the
:class:`~strongbox.sandbox.sandbox.Sandbox`, and records every transition in
the state file.

Recording a transition (``start``, ``pause``, ``resume``) is written *ahead*:
the status the verb leads to is recorded first, and only then is the verb
sent to the sandbox. If it cannot be recorded (the root is full, or gone),
nothing is done and the verb fails with one line: the container stays as
its record says. If the verb then fails, the record is put back to the
sandbox's status. Should even that write fail, the record may claim the
target status for a container that did not reach it; readers do not trust
it while the monitor lives (``state`` asks the monitor), and once the
monitor is gone the container reads as stopped, which is then the truth.

A forced delete (``destroy``) kills the container's processes and abandons
their output (:meth:`StdioPump.abandon`): the caller's readers may have
stopped reading, and a forced delete waits on nobody. The VM is then
destroyed without the courtesy of a guest shutdown.

The same class runs in the foreground for ``strongbox run``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from strongbox import status as sm
from strongbox.config import Config
from strongbox.errors import ContainerStartError, StateDirError, StrongboxError
from strongbox.runtime import ownerns
from strongbox.runtime import state as st
from strongbox.runtime.control import Connection, ControlServer, run_on_loop
from strongbox.sandbox.hooks import HookPlace
from strongbox.sandbox.plan import ContainerRequest
from strongbox.sandbox.pump import Sink, Source, StdioPump
from strongbox.sandbox.sandbox import ExitStatus, Sandbox
from strongbox.timeline import Timeline, span

log = logging.getLogger("strongbox.monitor")

#: Signals a monitor passes on to the container, as runc does for a foreground run.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2)


class Stdio:
    """The fds the container's process talks to (the caller's, or a console slave)."""

    def __init__(self, stdin: int, stdout: int, stderr: int, *, console: bool = False) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.console = console


class Monitor:
    """One container: its sandbox, stdio pump, control socket and state record."""

    def __init__(self, config: Config, store: st.StateStore, record: st.ContainerState,
                 spec: dict[str, Any], *, state_dir: Path, stdio: Stdio,
                 sandbox: Sandbox | None = None) -> None:
        self.config = config
        self.store = store
        self.record = record
        self.spec = spec
        self.stdio = stdio
        # This process is the pid its container reports: it stands for it in hooks.
        place = HookPlace(ownerns.host_pid(), ownerns.enter_host_namespaces)
        self.sandbox = sandbox or Sandbox(config, sandbox_id=record.id, root=store.root,
                                          state_dir=state_dir, hook_place=place)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pump: StdioPump | None = None
        self.server: ControlServer | None = None
        self.exit: ExitStatus | None = None
        self._exited = asyncio.Event()
        self._waiter: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        #: Every live stdio pump (the init's, each exec's): a forced delete abandons them.
        self._pumps: set[StdioPump] = set()
        self._destroying = False

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def status(self) -> sm.ContainerStatus:
        """The container's status: the sandbox's once it holds the container."""
        if self.record.status == sm.CREATING and self.id not in self.sandbox.containers:
            return sm.CREATING
        return self.sandbox.status(self.id)

    def _save(self) -> None:
        """Record the current status in the state file."""
        self.record.status = self.status
        self.store.save(self.record)

    def _save_quietly(self) -> None:
        """Record the current status if possible: the verb's outcome stands either way."""
        try:
            self._save()
        except StateDirError as exc:
            log.warning("%s", exc)

    async def _transition(self, verb: str, action: Callable[[], Awaitable[None]]) -> None:
        """Record where ``verb`` leads, then act; on failure record the truth again."""
        current = self.status
        self.record.status = sm.require(current, verb, self.id)
        try:
            self.store.save(self.record)
        except StateDirError as exc:
            self.record.status = current
            raise StateDirError(f"{exc}; the container was left {current}") from exc
        try:
            await action()
        finally:
            if self.status != self.record.status:  # failed, or moved on (an init that exited)
                self._save_quietly()

    def _pump(self, pump: StdioPump) -> StdioPump:
        """Start ``pump`` and keep it where a forced delete finds it."""
        if self._destroying:
            pump.abandon()
        self._pumps.add(pump)
        pump.start()
        return pump

    async def _finish(self, pump: StdioPump) -> None:
        try:
            await pump.finish()
        finally:
            self._pumps.discard(pump)

    # --- lifecycle -----------------------------------------------------------------------
    async def create(self) -> None:
        """Boot the sandbox and build the container up to its start barrier."""
        self.loop = asyncio.get_running_loop()
        self.record.monitor_pid = ownerns.host_pid()
        self.record.monitor_start = st.process_start_ticks(os.getpid())
        self.store.save(self.record)
        io = await self.sandbox.launch(ContainerRequest(
            id=self.id, spec=self.spec, rootfs=self.record.rootfs, overlay=self.record.overlay,
            bundle=self.record.bundle))
        self.pump = self._pump(StdioPump(io, stdin=Source(self.stdio.stdin),
                                         stdout=Sink(self.stdio.stdout, shared=True),
                                         stderr=Sink(self.stdio.stderr, shared=True)))
        self._waiter = asyncio.create_task(self._wait_init())
        self.server = ControlServer(self.store.socket_path(self.id), self._handle)
        self._save()

    async def _wait_init(self) -> None:
        steps = Timeline(self.id)
        try:
            self.exit = await self.sandbox.wait_process(self.id)
        except StrongboxError as exc:
            log.warning("lost the container's VM: %s", exc)
            self.exit = ExitStatus(128 + signal.SIGKILL, signal.SIGKILL)
        steps.lap("exit seen", f"status {self.exit.code}, since create")
        # Recorded now, not at teardown: from here until then the control socket may be
        # closed, and a `delete` must not read the record's "running" meanwhile.
        self.record.exit_code, self.record.exit_signal = self.exit.code, self.exit.signal
        self._save_quietly()
        if self.pump is not None:
            await self._finish(self.pump)
            steps.lap("output flushed")
        self._exited.set()

    async def start(self) -> None:
        await self._transition(sm.START, lambda: self.sandbox.start_container(self.id))

    async def wait(self) -> ExitStatus:
        await self._exited.wait()
        assert self.exit is not None
        return self.exit

    async def teardown(self) -> None:
        """Power the VM off and release everything; record how the container ended."""
        if self.server is not None:
            self.server.close()
            self.server = None
        try:
            if not self._destroying:  # a forced delete kills: no guest shutdown to wait for
                with span(self.id, "guest shutdown"):
                    await self.sandbox.stop()
        finally:
            await self.sandbox.destroy()
        if self.exit is not None:
            self.record.exit_code, self.record.exit_signal = self.exit.code, self.exit.signal
        self.record.status = sm.STOPPED
        try:
            self.store.save(self.record)
        except StateDirError:
            pass  # `delete` removed the record while we were stopping, or the root is full

    def forward_signals(self, terminal_resize: bool) -> None:
        """Signals sent to the monitor go to the container's process."""
        loop = asyncio.get_running_loop()
        for signum in FORWARDED:
            loop.add_signal_handler(signum, self._forward, signum)
        if terminal_resize:
            loop.add_signal_handler(signal.SIGWINCH, self._resize_from, self.stdio.stdin)
        else:
            loop.add_signal_handler(signal.SIGWINCH, self._forward, signal.SIGWINCH)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(_quietly(coro))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _forward(self, signum: int) -> None:
        self._spawn(self.sandbox.signal_process(self.id, signum))

    def _resize_from(self, fd: int) -> None:
        from strongbox.runtime.tty import window_size

        if size := window_size(fd):
            self._spawn(self.sandbox.resize_pty(self.id, *size))

    # --- control requests (each in its own thread) ----------------------------------------
    def _handle(self, conn: Connection, request: dict[str, Any], fds: list[int]
                ) -> dict[str, Any] | None:
        op = request.get("op")
        if op in ("exec", "file"):
            self._exec(conn, request, fds)
            return None
        for fd in fds:
            os.close(fd)
        handler = _OPS.get(str(op))
        if handler is None:
            raise StrongboxError(f"unknown control operation {op!r}")
        assert self.loop is not None
        result = run_on_loop(self.loop, handler(self, request))
        return {"ok": True, **(result or {})}

    async def op_status(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"status": self.status, "pid": ownerns.host_pid()}

    async def op_start(self, request: dict[str, Any]) -> None:
        await self.start()

    async def op_kill(self, request: dict[str, Any]) -> None:
        await self.sandbox.signal_process(self.id, int(request["signal"]),
                                          all_processes=bool(request.get("all")))

    async def op_destroy(self, request: dict[str, Any]) -> None:
        """Forced delete: kill everything, abandon all output; the normal exit path tears
        down, without waiting on any reader."""
        self._destroying = True
        for pump in list(self._pumps):
            pump.abandon()
        if self._exited.is_set():
            return
        try:
            if self.status == sm.PAUSED:
                await self.sandbox.resume_container(self.id)
            await self.sandbox.signal_process(self.id, signal.SIGKILL, all_processes=True)
        except StrongboxError as exc:
            log.warning("destroy: %s", exc)
            self.exit = ExitStatus(128 + signal.SIGKILL, signal.SIGKILL)
            self._exited.set()

    async def op_pause(self, request: dict[str, Any]) -> None:
        await self._transition(sm.PAUSE, lambda: self.sandbox.pause_container(self.id))

    async def op_resume(self, request: dict[str, Any]) -> None:
        await self._transition(sm.RESUME, lambda: self.sandbox.resume_container(self.id))

    async def op_update(self, request: dict[str, Any]) -> None:
        await self.sandbox.update_container(self.id, request.get("resources"))

    async def op_ps(self, request: dict[str, Any]) -> dict[str, Any]:
        processes = await self.sandbox.list_processes(self.id)
        return {"processes": [p.to_json() for p in processes]}

    async def op_stats(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"stats": await self.sandbox.stats_container(self.id)}

    # --- exec ----------------------------------------------------------------------------
    def _exec(self, conn: Connection, request: dict[str, Any], fds: list[int]) -> None:
        """Run a process (or a file operation) in the container, relaying the caller's fds,
        until it exits."""
        assert self.loop is not None
        loop = self.loop
        try:
            if len(fds) != 3:
                raise StrongboxError("exec needs three stdio descriptors")
            exec_id = str(request.get("exec_id") or secrets.token_hex(8))
            session = run_on_loop(loop, self._exec_start(exec_id, request, fds))
        except StrongboxError as exc:
            for fd in fds:
                os.close(fd)
            code = exc.exit_code if isinstance(exc, ContainerStartError) else 1
            conn.send({"ok": False, "error": str(exc), "kind": type(exc).__name__,
                       "exit_code": code})
            return
        try:
            conn.send({"ok": True, "exec_id": exec_id})
        except OSError:
            pass  # the exec command went away already: the process runs on, as below
        done = asyncio.run_coroutine_threadsafe(self._exec_wait(exec_id, session), loop)
        done.add_done_callback(lambda f: _send_exit(conn, f))
        while not done.done():
            try:
                message, extra = conn.recv()
            except OSError:
                break
            for fd in extra:
                os.close(fd)
            if message is None:
                break  # the exec command went away; the process keeps running, as in runc
            asyncio.run_coroutine_threadsafe(_quietly(self._exec_control(exec_id, message)),
                                             loop)
        done.result()

    async def _exec_start(self, exec_id: str, request: dict[str, Any], fds: list[int]
                          ) -> tuple[StdioPump, list[int]]:
        """An exec's process, or (op "file", for the SDK) a file operation carried like one."""
        if request.get("op") == "file":
            op, path, mode = request.get("file_op"), request.get("path"), request.get("mode")
            if not (isinstance(op, str) and isinstance(path, str) and isinstance(mode, int)):
                raise StrongboxError("file: expected file_op and path strings, mode an integer")
            io = await self.sandbox.file_transfer(self.id, exec_id, op, path, mode=mode)
        else:
            io = await self.sandbox.exec_process(self.id, exec_id, request.get("process"),
                                                 stdin=True)
        pump = self._pump(StdioPump(io, stdin=Source(fds[0]), stdout=Sink(fds[1], shared=True),
                                    stderr=Sink(fds[2], shared=True)))
        return pump, fds

    async def _exec_wait(self, exec_id: str, session: tuple[StdioPump, list[int]]
                         ) -> ExitStatus:
        pump, fds = session
        try:
            status = await self.sandbox.wait_process(self.id, exec_id)
            await self._finish(pump)
            return status
        finally:
            self._pumps.discard(pump)
            for fd in set(fds):
                try:
                    os.close(fd)
                except OSError:
                    pass

    async def _exec_control(self, exec_id: str, message: dict[str, Any]) -> None:
        if message.get("op") == "signal":
            await self.sandbox.signal_process(self.id, int(message["signal"]), exec_id=exec_id)
        elif message.get("op") == "resize":
            await self.sandbox.resize_pty(self.id, int(message["rows"]), int(message["cols"]),
                                          exec_id=exec_id)


def _send_exit(conn: Connection, future: Any) -> None:
    try:
        status = future.result()
        conn.send({"exit": {"code": status.code, "signal": status.signal}})
    except Exception as exc:
        try:
            conn.send({"exit": {"code": 255, "signal": None, "error": str(exc)}})
        except OSError:
            pass


async def _quietly(coro: Any) -> None:
    """Signals and resizes race with the process exiting; that is not an error."""
    try:
        await coro
    except Exception:
        pass


_OPS = {
    "status": Monitor.op_status,
    "start": Monitor.op_start,
    "kill": Monitor.op_kill,
    "destroy": Monitor.op_destroy,
    "pause": Monitor.op_pause,
    "resume": Monitor.op_resume,
    "update": Monitor.op_update,
    "ps": Monitor.op_ps,
    "stats": Monitor.op_stats,
}
