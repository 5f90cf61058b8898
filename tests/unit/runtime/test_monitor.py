"""The monitor over the fake sandbox: control operations, state records, stdio and exec.

The monitor is the container as the CLI sees it: it translates every control
request into one sandbox verb, records each transition in state.json (the
only thing ``state`` and ``list`` read when it is busy), relays the
container's stdio to the fds its caller gave it, and ends with the
container's exit status. These tests pin that translation and that
bookkeeping against :class:`tests.framework.fake_sandbox.FakeSandbox`, with
real pipes and a real control socket, all in one event loop (control calls
go through worker threads, as a CLI process would make them). What a VM does
is the VM tests' business.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from strongbox.config import Config
from strongbox.oci.spec import validate
from strongbox.runtime import control
from strongbox.runtime.monitor import Monitor, Stdio
from strongbox.runtime.state import ContainerState, StateStore, process_start_ticks
from strongbox.sandbox.plan import ContainerRequest
from strongbox.sandbox.pump import ProcessIO
from strongbox.sandbox.replies import ExitStatus
from strongbox.status import CREATED, CREATING, PAUSED, RUNNING, STOPPED
from tests.framework.fake_sandbox import FakeSandbox, FakeStream

CID = "c1"
SPEC = validate({"ociVersion": "1.0.2", "root": {"path": "rootfs"},
                 "process": {"args": ["sleep", "1000"], "cwd": "/", "env": ["PATH=/bin"]}})
#: Every scenario, set-up and shutdown included, ends within this.
SCENARIO_TIMEOUT = 10.0
#: A blocking read or control call made from a worker thread gives up after this.
IO_TIMEOUT = 5.0


class RecordingSandbox(FakeSandbox):
    """The fake, also recording what its ``calls`` leave out.

    ``list_processes`` and ``stats_container`` are not in the fake's
    ``calls``, and ``signal_process`` is recorded there without its
    ``all_processes`` flag; ``launch`` also notes the state record as it
    was when the VM was asked for.
    """

    def __init__(self, store: StateStore) -> None:
        super().__init__(sandbox_id=CID)
        self.store = store
        self.kills: list[tuple[str, int, str, bool]] = []
        self.record_at_launch: ContainerState | None = None

    async def launch(self, request: ContainerRequest, *, timeout: float | None = None
                     ) -> ProcessIO:
        self.record_at_launch = self.store.load(request.id)
        return await super().launch(request, timeout=timeout)

    async def list_processes(self, cid: str) -> Any:
        self.calls.append(("list_processes", cid))
        return await super().list_processes(cid)

    async def stats_container(self, cid: str) -> dict[str, Any]:
        self.calls.append(("stats_container", cid))
        return await super().stats_container(cid)

    async def signal_process(self, cid: str, signal: int, *, exec_id: str = "",
                             all_processes: bool = False) -> None:
        self.kills.append((cid, signal, exec_id, all_processes))
        await super().signal_process(cid, signal, exec_id=exec_id, all_processes=all_processes)

    def verbs(self) -> Counter[str]:
        return Counter(call[0] for call in self.calls)


def _read(fd: int, timeout: float = IO_TIMEOUT) -> bytes:
    """One read that gives up (TimeoutError) instead of blocking a worker forever."""
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        raise TimeoutError(f"nothing to read on fd {fd} within {timeout}s")
    return os.read(fd, 65536)


async def _until(predicate: Callable[[], bool], timeout: float = IO_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.005)


class Pipes:
    """Pipes a test opened, closed once each, whatever closed some of them already."""

    def __init__(self) -> None:
        self._open: list[int] = []

    def pipe(self) -> tuple[int, int]:
        r, w = os.pipe()
        self._open += [r, w]
        return r, w

    def close(self, fd: int) -> None:
        if fd in self._open:
            self._open.remove(fd)
            os.close(fd)

    def close_all(self) -> None:
        for fd in list(self._open):
            self.close(fd)


class Harness(Pipes):
    """One monitor with its store, fake sandbox and stdio pipes (the test holds the far ends)."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = StateStore(tmp_path / "root")
        self.record = ContainerState(id=CID, bundle=str(tmp_path / "bundle"),
                                     rootfs=str(tmp_path / "bundle" / "rootfs"), overlay=True)
        self.store.create(self.record)
        super().__init__()
        self.stdin_r, self.stdin_w = self.pipe()
        self.stdout_r, self.stdout_w = self.pipe()
        self.stderr_r, self.stderr_w = self.pipe()
        self.fake = RecordingSandbox(self.store)
        self.monitor = Monitor(Config(), self.store, self.record, SPEC,
                               state_dir=tmp_path / "state",
                               stdio=Stdio(self.stdin_r, self.stdout_w, self.stderr_w),
                               sandbox=self.fake)  # type: ignore[arg-type]

    @property
    def path(self) -> Path:
        return self.store.socket_path(CID)

    def state(self) -> ContainerState:
        return self.store.load(CID)

    def state_bytes(self) -> bytes:
        return (self.store.dir(CID) / "state.json").read_bytes()

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """A control request as a CLI command makes it (raises ControlError if refused)."""
        return await asyncio.to_thread(control.call, self.path, request, timeout=IO_TIMEOUT)

    async def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        """A control request; the raw answer, ok or not."""

        def round_trip() -> dict[str, Any]:
            conn = control.connect(self.path, IO_TIMEOUT)
            try:
                conn.send(request)
                answer, fds = conn.recv()
                assert answer is not None and fds == []
                return answer
            finally:
                conn.close()

        return await asyncio.to_thread(round_trip)

    async def read(self, fd: int) -> bytes:
        return await asyncio.to_thread(_read, fd)

    async def started(self) -> None:
        await self.monitor.create()
        await self.call({"op": "start"})

    async def shutdown(self) -> None:
        """Whatever the scenario left: tear down, let the init's wait end, stop stdin's thread."""
        if not self.fake.destroyed:
            await self.monitor.teardown()
        if self.monitor._waiter is not None:
            await asyncio.wait_for(self.monitor.wait(), IO_TIMEOUT)
        self.close(self.stdin_w)  # EOF for the stdin relay's thread
        await _until(lambda: not any(t.name == "stdio-in" and t.is_alive()
                                     for t in threading.enumerate()))


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close_all()
    if h.fake in FakeSandbox.instances:
        FakeSandbox.instances.remove(h.fake)


def run(h: Harness, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run ``scenario`` and then the harness's shutdown, bounded, on one event loop."""

    async def main() -> None:
        try:
            await asyncio.wait_for(scenario(), SCENARIO_TIMEOUT)
        finally:
            await asyncio.wait_for(h.shutdown(), SCENARIO_TIMEOUT)

    asyncio.run(main())


# --- create ------------------------------------------------------------------------------

def test_create_records_created_and_launches_one_sandbox(harness: Harness) -> None:
    h = harness

    async def scenario() -> None:
        assert h.state().status is CREATING
        await h.monitor.create()
        me, ticks = os.getpid(), process_start_ticks(os.getpid())
        record = h.state()
        assert record.status is CREATED
        assert (record.monitor_pid, record.monitor_start) == (me, ticks)
        assert record.monitor_alive
        # the monitor's identity is on disk before the (slow) boot begins
        assert h.fake.record_at_launch is not None
        assert h.fake.record_at_launch.status is CREATING
        assert h.fake.record_at_launch.monitor_pid == me
        assert h.fake.calls == [("launch", CID)]
        request = h.fake.containers[CID].request
        assert (request.id, request.rootfs, request.overlay) == (CID, h.record.rootfs, True)
        assert request.spec == SPEC
        assert h.path.exists()
        assert await h.call({"op": "status"}) == {"ok": True, "status": "created", "pid": me}

    run(h, scenario)


# --- control operations ------------------------------------------------------------------

def test_each_operation_is_one_sandbox_verb_and_the_record_follows(harness: Harness) -> None:
    h = harness

    async def scenario() -> None:
        await h.monitor.create()
        assert h.fake.verbs() == {"launch": 1}

        assert await h.call({"op": "start"}) == {"ok": True}
        assert h.fake.verbs()["start_container"] == 1
        assert h.state().status is RUNNING
        assert h.fake.process(CID).started

        assert (await h.call({"op": "status"}))["status"] == "running"

        assert await h.call({"op": "pause"}) == {"ok": True}
        assert h.fake.verbs()["pause_container"] == 1
        assert h.state().status is PAUSED
        assert (await h.call({"op": "status"}))["status"] == "paused"

        assert await h.call({"op": "resume"}) == {"ok": True}
        assert h.fake.verbs()["resume_container"] == 1
        assert h.state().status is RUNNING

        assert await h.call({"op": "kill", "signal": int(signal.SIGUSR1), "all": False}) \
            == {"ok": True}
        assert h.fake.kills == [(CID, signal.SIGUSR1, "", False)]
        assert h.fake.process(CID).signals == [signal.SIGUSR1]

        resources = {"pids": {"limit": 10}, "memory": {"limit": 64 << 20}}
        assert await h.call({"op": "update", "resources": resources}) == {"ok": True}
        assert h.fake.verbs()["update_container"] == 1
        assert h.fake.containers[CID].resources == resources

        ps = await h.call({"op": "ps"})
        assert h.fake.verbs()["list_processes"] == 1
        assert [(p["pid"], p["comm"], p["args"]) for p in ps["processes"]] \
            == [(7, "sleep", ["sleep", "1000"])]

        stats = await h.call({"op": "stats"})
        assert h.fake.verbs()["stats_container"] == 1
        assert stats["stats"]["pids"] == {"current": 1, "max": None}
        assert stats["stats"]["status"] == "running"

        assert h.fake.verbs() == {"launch": 1, "start_container": 1, "pause_container": 1,
                                  "resume_container": 1, "signal_process": 1,
                                  "update_container": 1, "list_processes": 1,
                                  "stats_container": 1}
        assert h.state().status is RUNNING

    run(h, scenario)


@pytest.mark.parametrize(("before", "op", "message"), [
    ([], "pause", "cannot pause container c1: it is created, not running"),
    ([], "resume", "cannot resume container c1: it is created, not paused"),
    (["start"], "start", "cannot start container c1: it is running, not created"),
    (["start"], "resume", "cannot resume container c1: it is running, not paused"),
    (["start", "pause"], "pause", "cannot pause container c1: it is paused, not running"),
    (["start", "pause"], "start", "cannot start container c1: it is paused, not created"),
], ids=["pause-created", "resume-created", "start-twice", "resume-running", "pause-twice",
        "start-paused"])
def test_operation_in_the_wrong_status_is_refused_and_changes_nothing(
        harness: Harness, before: list[str], op: str, message: str) -> None:
    h = harness

    async def scenario() -> None:
        await h.monitor.create()
        for step in before:
            await h.call({"op": step})
        status, record = h.fake.status(CID), h.state_bytes()
        answer = await h.ask({"op": op})
        assert answer == {"ok": False, "error": message, "kind": "ContainerStateError"}
        assert h.fake.status(CID) is status
        assert h.state_bytes() == record
        with pytest.raises(control.ControlError) as info:
            await h.call({"op": op})
        assert info.value.kind == "ContainerStateError"

    run(h, scenario)


def test_unknown_operation(harness: Harness) -> None:
    h = harness

    async def scenario() -> None:
        await h.monitor.create()
        answer = await h.ask({"op": "frobnicate"})
        assert answer == {"ok": False, "error": "unknown control operation 'frobnicate'",
                          "kind": "StrongboxError"}

    run(h, scenario)


def test_update_with_invalid_resources_names_the_field(harness: Harness) -> None:
    h = harness

    async def scenario() -> None:
        await h.monitor.create()
        answer = await h.ask({"op": "update", "resources": {"pids": {"limit": "many"}}})
        assert answer["ok"] is False and answer["kind"] == "SpecError"
        assert "linux.resources.pids.limit" in answer["error"]
        assert h.fake.containers[CID].resources == {}

    run(h, scenario)


# --- stdio -------------------------------------------------------------------------------

def test_output_and_input_are_relayed(harness: Harness) -> None:
    h = harness

    async def scenario() -> None:
        await h.started()
        io = h.fake.process(CID).io
        assert isinstance(io.stdout, FakeStream) and isinstance(io.stderr, FakeStream)
        assert isinstance(io.stdin, FakeStream)
        io.stdout.feed(b"hello from the container\n")
        assert await h.read(h.stdout_r) == b"hello from the container\n"
        io.stderr.feed(b"oops\n")
        assert await h.read(h.stderr_r) == b"oops\n"
        os.write(h.stdin_w, b"typed input")
        await _until(lambda: bytes(io.stdin.written) == b"typed input")  # type: ignore[union-attr]
        h.close(h.stdin_w)
        await asyncio.wait_for(io.stdin.closed.wait(), IO_TIMEOUT)  # EOF reaches the process

    run(h, scenario)


# --- the end -----------------------------------------------------------------------------

def test_init_exit_ends_the_monitor_with_its_code(harness: Harness) -> None:
    h = harness

    async def scenario() -> None:
        await h.started()
        h.fake.process(CID).io.stdout.feed(b"last words\n")  # type: ignore[union-attr]
        h.fake.exit(CID, "", 3)
        assert await asyncio.wait_for(h.monitor.wait(), IO_TIMEOUT) == ExitStatus(3, None)
        assert await h.read(h.stdout_r) == b"last words\n"  # flushed before the end
        assert (await h.call({"op": "status"}))["status"] == "stopped"
        answer = await h.ask({"op": "kill", "signal": 15})
        assert answer["ok"] is False and answer["kind"] == "ContainerStateError"
        assert "it is stopped" in answer["error"]

        await h.monitor.teardown()
        record = h.state()
        assert (record.status, record.exit_code, record.exit_signal) == (STOPPED, 3, None)
        assert not h.path.exists()
        assert h.fake.stopped and h.fake.destroyed
        with pytest.raises(control.MonitorUnreachable):
            await h.call({"op": "status"})

    run(h, scenario)


def test_death_by_signal_is_recorded(harness: Harness) -> None:
    h = harness

    async def scenario() -> None:
        await h.started()
        await h.call({"op": "kill", "signal": int(signal.SIGTERM)})
        assert await asyncio.wait_for(h.monitor.wait(), IO_TIMEOUT) \
            == ExitStatus(128 + signal.SIGTERM, signal.SIGTERM)
        await h.monitor.teardown()
        record = h.state()
        assert (record.status, record.exit_code, record.exit_signal) \
            == (STOPPED, 143, signal.SIGTERM)

    run(h, scenario)


def test_destroy_kills_every_process(harness: Harness) -> None:
    h = harness

    async def scenario() -> None:
        await h.started()
        assert await h.call({"op": "destroy"}) == {"ok": True}
        assert h.fake.kills == [(CID, signal.SIGKILL, "", True)]
        assert await asyncio.wait_for(h.monitor.wait(), IO_TIMEOUT) \
            == ExitStatus(137, signal.SIGKILL)
        assert await h.call({"op": "destroy"}) == {"ok": True}  # over already: nothing to do
        assert len(h.fake.kills) == 1
        await h.monitor.teardown()
        assert h.state().status is STOPPED and h.state().exit_code == 137

    run(h, scenario)


def test_destroy_of_a_paused_container_resumes_it_first(harness: Harness) -> None:
    h = harness

    async def scenario() -> None:
        await h.started()
        await h.call({"op": "pause"})
        assert await h.call({"op": "destroy"}) == {"ok": True}
        assert [c[0] for c in h.fake.calls][-2:] == ["resume_container", "signal_process"]
        assert h.fake.kills == [(CID, signal.SIGKILL, "", True)]
        assert (await asyncio.wait_for(h.monitor.wait(), IO_TIMEOUT)).code == 137

    run(h, scenario)


def test_teardown_while_running(harness: Harness) -> None:
    h = harness

    async def scenario() -> None:
        await h.started()
        await h.monitor.teardown()
        assert h.state().status is STOPPED
        assert not h.path.exists()
        assert h.fake.stopped and h.fake.destroyed
        assert await asyncio.wait_for(h.monitor.wait(), IO_TIMEOUT) \
            == ExitStatus(137, signal.SIGKILL)

    run(h, scenario)


# --- exec --------------------------------------------------------------------------------

class ExecCaller(Pipes):
    """What ``strongbox exec`` holds: a control connection and the far ends of three pipes."""

    def __init__(self) -> None:
        super().__init__()
        self.in_r, self.in_w = self.pipe()
        self.out_r, self.out_w = self.pipe()
        self.err_r, self.err_w = self.pipe()
        self.conn: control.Connection | None = None

    async def request(self, path: Path, message: dict[str, Any]) -> dict[str, Any]:
        """Send the exec request with the three fds (then let go of the monitor's ends)."""

        def send() -> dict[str, Any]:
            self.conn = control.connect(path, IO_TIMEOUT)
            self.conn.send(message, [self.in_r, self.out_w, self.err_w])
            for fd in (self.in_r, self.out_w, self.err_w):
                self.close(fd)
            answer, fds = self.conn.recv()
            assert answer is not None and fds == []
            return answer

        return await asyncio.to_thread(send)

    async def send(self, message: dict[str, Any]) -> None:
        assert self.conn is not None
        await asyncio.to_thread(self.conn.send, message)

    async def recv(self) -> dict[str, Any] | None:
        assert self.conn is not None
        message, fds = await asyncio.to_thread(self.conn.recv)
        assert fds == []
        return message

    def close_all(self) -> None:
        super().close_all()
        if self.conn is not None:
            self.conn.close()


@pytest.fixture
def caller() -> Iterator[ExecCaller]:
    c = ExecCaller()
    yield c
    c.close_all()


EXEC_PROCESS = {"args": ["cat"], "cwd": "/", "env": ["PATH=/bin"]}


def test_exec_relays_stdio_signals_and_exit(harness: Harness, caller: ExecCaller) -> None:
    h = harness

    async def scenario() -> None:
        await h.started()
        try:
            answer = await caller.request(h.path, {"op": "exec", "exec_id": "e1",
                                                   "process": EXEC_PROCESS})
            assert answer == {"ok": True, "exec_id": "e1"}
            assert h.fake.calls[-1] == ("exec_process", CID, "e1")
            proc = h.fake.process(CID, "e1")
            assert proc.process["args"] == ["cat"]
            assert isinstance(proc.io.stdout, FakeStream)
            assert isinstance(proc.io.stderr, FakeStream)
            assert isinstance(proc.io.stdin, FakeStream)

            proc.io.stdout.feed(b"exec output")
            assert await h.read(caller.out_r) == b"exec output"
            proc.io.stderr.feed(b"exec error")
            assert await h.read(caller.err_r) == b"exec error"
            os.write(caller.in_w, b"to cat")
            stdin = proc.io.stdin
            await _until(lambda: bytes(stdin.written) == b"to cat")

            await caller.send({"op": "signal", "signal": int(signal.SIGUSR2)})
            await _until(lambda: proc.signals == [signal.SIGUSR2])
            assert h.fake.kills[-1] == (CID, signal.SIGUSR2, "e1", False)
            await caller.send({"op": "resize", "rows": 24, "cols": 80})
            await _until(lambda: ("resize_pty", CID, "e1", "24x80") in h.fake.calls)

            h.fake.exit(CID, "e1", 5)
            assert await caller.recv() == {"exit": {"code": 5, "signal": None}}
            # the monitor let go of the passed fds: only our (closed) ends held the pipes
            assert await h.read(caller.out_r) == b""
            assert await h.read(caller.err_r) == b""
            # the container itself is untouched
            assert h.fake.status(CID) is RUNNING
            assert h.state().status is RUNNING
            assert h.fake.process(CID).signals == []
        finally:
            caller.close(caller.in_w)

    run(h, scenario)


def test_exec_gets_an_id_when_none_is_given(harness: Harness, caller: ExecCaller) -> None:
    h = harness

    async def scenario() -> None:
        await h.started()
        try:
            answer = await caller.request(h.path, {"op": "exec", "process": EXEC_PROCESS})
            assert answer["ok"] is True
            exec_id = answer["exec_id"]
            assert isinstance(exec_id, str) and len(exec_id) == 16
            assert h.fake.calls[-1] == ("exec_process", CID, exec_id)
            h.fake.exit(CID, exec_id, 0)
            assert await caller.recv() == {"exit": {"code": 0, "signal": None}}
        finally:
            caller.close(caller.in_w)

    run(h, scenario)


@pytest.mark.parametrize(("process", "start", "kind", "words"), [
    ({"args": "notalist"}, True, "SpecError", "process.args"),
    ({"args": []}, True, "SpecError", "process.args"),
    (EXEC_PROCESS, False, "ContainerStateError",
     "cannot exec in container c1: it is created, not running"),
], ids=["args-not-a-list", "args-empty", "not-running"])
def test_exec_refused(harness: Harness, caller: ExecCaller, process: dict[str, Any],
                      start: bool, kind: str, words: str) -> None:
    h = harness

    async def scenario() -> None:
        if start:
            await h.started()
        else:
            await h.monitor.create()
        try:
            answer = await caller.request(h.path, {"op": "exec", "exec_id": "bad",
                                                   "process": process})
            assert answer["ok"] is False and answer["kind"] == kind
            assert words in answer["error"] and "\n" not in answer["error"]
            assert answer["exit_code"] == 1
            assert "bad" not in h.fake.containers[CID].processes
            assert await caller.recv() is None
            # the monitor closed the fds it was passed
            assert await h.read(caller.out_r) == b""
            assert await h.read(caller.err_r) == b""
        finally:
            caller.close(caller.in_w)

    run(h, scenario)


def test_exec_needs_three_fds(harness: Harness) -> None:
    h = harness

    async def scenario() -> None:
        await h.started()
        r, w = os.pipe()
        try:
            answer = await asyncio.to_thread(control.call, h.path,
                                             {"op": "exec", "process": EXEC_PROCESS},
                                             fds=(r, w), timeout=IO_TIMEOUT)
        except control.ControlError as exc:
            assert "exec needs three stdio descriptors" in str(exc)
        else:
            raise AssertionError(f"exec with two fds was accepted: {answer}")
        finally:
            os.close(r)
        os.close(w)
        assert not any(c[0] == "exec_process" for c in h.fake.calls)

    run(h, scenario)


def test_exec_stdin_is_left_alone_after_the_exec_exits(harness: Harness,
                                                       caller: ExecCaller) -> None:
    h = harness
    keep_r = os.dup(caller.in_r)  # our own read end: where late input should still be

    async def scenario() -> None:
        await h.started()
        try:
            answer = await caller.request(h.path, {"op": "exec", "exec_id": "e1",
                                                   "process": EXEC_PROCESS})
            assert answer["ok"] is True
            h.fake.exit(CID, "e1", 0)
            assert await caller.recv() == {"exit": {"code": 0, "signal": None}}
            await asyncio.sleep(0.1)
            os.write(caller.in_w, b"typed after the exec ended")
            await asyncio.sleep(0.2)
            assert await asyncio.to_thread(_read, keep_r, 1.0) == b"typed after the exec ended"
        finally:
            caller.close(caller.in_w)

    try:
        run(h, scenario)
    finally:
        os.close(keep_r)


# --- a root that cannot be written (issue 11: a full root at start) ----------------------

def _disk_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every later write of a record fails as on a full file system."""
    import errno

    from strongbox.runtime import state as state_module

    def full(path: Path, data: bytes, mode: int = 0o600) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(state_module, "atomic_write", full)


@pytest.mark.parametrize(("before", "op", "left"), [
    ([], "start", CREATED), (["start"], "pause", RUNNING), (["start", "pause"], "resume", PAUSED),
], ids=["start", "pause", "resume"])
def test_a_transition_that_cannot_be_recorded_is_not_made(
        harness: Harness, monkeypatch: pytest.MonkeyPatch, before: list[str], op: str,
        left: Any) -> None:
    """Written ahead: with the root full, the verb fails cleanly and is never sent."""
    h = harness

    async def scenario() -> None:
        await h.monitor.create()
        for step in before:
            await h.call({"op": step})
        verbs, record = h.fake.verbs(), h.state_bytes()
        _disk_full(monkeypatch)
        answer = await h.ask({"op": op})
        assert answer["ok"] is False and answer["kind"] == "StateDirError"
        assert answer["error"] == (f"root {h.store.root}: cannot record the state of container "
                                   f"{CID} (No space left on device); the container was left "
                                   f"{left}")
        assert h.fake.verbs() == verbs  # the sandbox was not asked
        assert h.fake.status(CID) is left and h.state_bytes() == record
        assert (await h.call({"op": "status"}))["status"] == left
        monkeypatch.undo()
        assert await h.call({"op": op}) == {"ok": True}  # space again: it works

    run(h, scenario)


def test_the_record_is_written_before_the_start_and_rolled_back_if_it_fails(
        harness: Harness) -> None:
    from strongbox.errors import ContainerStartError

    h = harness
    seen: list[Any] = []
    original = h.fake.start_container

    async def start_container(cid: str) -> None:
        seen.append(h.state().status)  # what a reader sees while the VM starts it
        await original(cid)

    h.fake.start_container = start_container  # type: ignore[method-assign]

    async def scenario() -> None:
        await h.monitor.create()
        h.fake.fail_start = ContainerStartError("exec: no such file", 127)
        with pytest.raises(control.ControlError, match="no such file"):
            await h.call({"op": "start"})
        assert seen == [RUNNING]
        assert h.state().status is STOPPED  # the truth, not the status written ahead

    run(h, scenario)


def test_destroy_does_not_wait_for_output_nobody_reads(harness: Harness) -> None:
    """A forced delete with the caller's stdout full: over at once, not after OUTPUT_GRACE."""
    from strongbox.sandbox.pump import OUTPUT_GRACE

    h = harness

    async def scenario() -> None:
        await h.started()
        stdout = h.fake.process(CID).io.stdout
        assert isinstance(stdout, FakeStream)
        for _ in range(32):  # 2 MiB into a 64 KiB pipe nobody reads
            stdout.feed(b"x" * 65536)
        await asyncio.sleep(0.2)  # the pump is blocked writing to the full pipe
        started = time.monotonic()
        assert await h.call({"op": "destroy"}) == {"ok": True}
        assert await asyncio.wait_for(h.monitor.wait(), IO_TIMEOUT) \
            == ExitStatus(137, signal.SIGKILL)
        await h.monitor.teardown()
        elapsed = time.monotonic() - started
        assert elapsed < min(1.0, OUTPUT_GRACE / 2), elapsed
        assert not h.fake.stopped and h.fake.destroyed  # killed: no guest shutdown awaited

    run(h, scenario)
