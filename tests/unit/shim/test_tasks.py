"""The shim's TaskManager over a FakeSandbox: the orchestration containerd depends on.

containerd trusts a shim to publish task events in a fixed order (create ->
start -> exit -> delete; exec-added -> exec-started -> exit; OOM before the
exit of an OOM-killed init), to report a process stopped only once its exit
is out, and to refuse verbs in the wrong status with the errors it maps
(not found, failed precondition, already exists, invalid argument). These
tests drive :class:`strongbox.shim.tasks.TaskManager` directly, with a
recording event sink and :class:`tests.framework.fake_sandbox.FakeSandbox`
(no VM), and real FIFOs in a temporary directory for stdio. Each scenario
runs on a fresh event loop and takes milliseconds.

The helpers here (bundle, sink, manager, polling) are shared with
``test_service.py``, which drives the same manager through the ttrpc handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from strongbox import status as sm
from strongbox.config import Config
from strongbox.errors import ConfigError, ContainerStartError, ContainerStateError
from strongbox.shim import tasks
from strongbox.shim.address import CRI_CONTAINER_TYPE, CRI_SANDBOX_ID
from strongbox.shim.tasks import EventSink, SandboxFactory, TaskManager
from strongbox.shim.ttrpc.status import (
    ALREADY_EXISTS,
    FAILED_PRECONDITION,
    NOT_FOUND,
    TtrpcError,
)
from tests.framework.fake_sandbox import FakeSandbox, FakeStream

T = TypeVar("T")

NAMESPACE = "default"
NO_STDIO = ("", "", "")
#: What FakeSandbox reports as the VMM's pid: the pid of every task and exec.
FAKE_PID = os.getpid()
SLEEP = {"args": ["sleep", "1000"], "cwd": "/", "env": ["PATH=/bin"]}


# --- helpers ---------------------------------------------------------------------------------


def run(coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
    """Run one scenario on a fresh loop, failing instead of hanging."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def write_bundle(where: Path, annotations: dict[str, str] | None = None) -> str:
    """A minimal OCI bundle: config.json and an empty rootfs/ (the fake never reads it)."""
    where.mkdir(parents=True)
    (where / "rootfs").mkdir()
    config: dict[str, Any] = {"ociVersion": "1.0.2", "root": {"path": "rootfs"},
                              "process": dict(SLEEP), "linux": {}}
    if annotations:
        config["annotations"] = annotations
    (where / "config.json").write_text(json.dumps(config))
    return str(where)


def pod_annotations(kind: str, pod: str = "pod1") -> dict[str, str]:
    """CRI's annotations of a pod's sandbox (``kind="sandbox"``) or member container."""
    return {CRI_CONTAINER_TYPE: kind, CRI_SANDBOX_ID: pod}


class RecordingSink:
    """An :class:`EventSink` that keeps every event as ``(name, args)``, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []

    def task_create(self, container_id: str, bundle: str, rootfs: list[dict[str, Any]],
                    stdio: tuple[str, str, str], terminal: bool, pid: int) -> None:
        self.events.append(("create", (container_id, bundle, rootfs, stdio, terminal, pid)))

    def task_start(self, container_id: str, pid: int) -> None:
        self.events.append(("start", (container_id, pid)))

    def task_exit(self, container_id: str, exec_id: str, pid: int, status: int,
                  exited_at: float) -> None:
        self.events.append(("exit", (container_id, exec_id, pid, status, exited_at)))

    def task_delete(self, container_id: str, exec_id: str, pid: int, status: int,
                    exited_at: float) -> None:
        self.events.append(("delete", (container_id, exec_id, pid, status, exited_at)))

    def task_oom(self, container_id: str) -> None:
        self.events.append(("oom", (container_id,)))

    def exec_added(self, container_id: str, exec_id: str) -> None:
        self.events.append(("exec_added", (container_id, exec_id)))

    def exec_started(self, container_id: str, exec_id: str, pid: int) -> None:
        self.events.append(("exec_started", (container_id, exec_id, pid)))

    def task_paused(self, container_id: str) -> None:
        self.events.append(("paused", (container_id,)))

    def task_resumed(self, container_id: str) -> None:
        self.events.append(("resumed", (container_id,)))

    # --- reading it back ---------------------------------------------------------------------
    _WITH_EXEC_ID = ("exit", "delete", "exec_added", "exec_started")

    def trail(self) -> list[tuple[str, str, str]]:
        """Every event as (name, container id, exec id or "")."""
        return [(name, args[0], args[1] if name in self._WITH_EXEC_ID else "")
                for name, args in self.events]

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def args(self, name: str, exec_id: str | None = None) -> tuple[Any, ...]:
        """The arguments of the one event ``name`` (of ``exec_id``, when given)."""
        found = [args for n, args in self.events
                 if n == name and (exec_id is None or args[1] == exec_id)]
        assert len(found) == 1, f"expected one {name} event, got {self.events}"
        return found[0]


def make_manager(tmp_path: Path, sink: EventSink | None = None) -> TaskManager:
    """A TaskManager whose sandbox is a FakeSandbox (call it inside the event loop)."""
    return TaskManager(Config(), namespace=NAMESPACE, events=sink or RecordingSink(),
                       root=tmp_path / "root", state_dir=tmp_path / "state",
                       sandbox_factory=cast(SandboxFactory, FakeSandbox))


def fake_of(manager: TaskManager) -> FakeSandbox:
    """The manager's sandbox, which make_manager made a fake."""
    assert isinstance(manager.sandbox, FakeSandbox)
    return manager.sandbox


def sink_of(manager: TaskManager) -> RecordingSink:
    assert isinstance(manager.events, RecordingSink)
    return manager.events


async def create(manager: TaskManager, tmp_path: Path, cid: str = "c1", *,
                 stdio: tuple[str, str, str] = NO_STDIO,
                 annotations: dict[str, str] | None = None) -> int:
    bundle = write_bundle(tmp_path / "bundles" / cid, annotations)
    return await manager.create(cid, bundle, [], False, stdio)


async def started(manager: TaskManager, tmp_path: Path, cid: str = "c1", *,
                  stdio: tuple[str, str, str] = NO_STDIO) -> None:
    """Create and start ``cid``."""
    await create(manager, tmp_path, cid, stdio=stdio)
    await manager.start(cid, "")


async def until(predicate: Callable[[], bool], what: str, timeout: float = 2.0) -> None:
    """Poll ``predicate`` on the loop (short sleeps) until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def spin(times: int = 20) -> None:
    """Let every ready task of the loop run a few times."""
    for _ in range(times):
        await asyncio.sleep(0)


async def read_fifo(fd: int, size: int, timeout: float = 2.0) -> bytes:
    """Read ``size`` bytes from a non-blocking FIFO read end, polling."""
    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < size:
        if time.monotonic() > deadline:
            raise AssertionError(f"read {got!r} from the FIFO, expected {size} bytes")
        try:
            got += os.read(fd, size - len(got))
        except BlockingIOError:
            await asyncio.sleep(0.005)
        else:
            await asyncio.sleep(0)
    return got


async def open_writer(path: Path, timeout: float = 2.0) -> int:
    """Open a FIFO for writing once the pump's reader is in its (blocking) open."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.005)


def stdin_openers() -> int:
    """Threads of the stdio pump blocked in opening a stdin FIFO."""
    return sum(1 for t in threading.enumerate() if t.name == "stdin-open")


# --- the init's lifecycle ------------------------------------------------------------------


def test_init_events_in_containerd_order(tmp_path: Path) -> None:
    """create -> start -> exit -> delete; the exit only once the process ended."""

    async def scenario() -> None:
        m = make_manager(tmp_path)
        sink = sink_of(m)
        assert await create(m, tmp_path) == FAKE_PID
        fake = fake_of(m)
        assert fake.calls == [("launch", "c1")]
        assert m.state("c1", "")["status"] == sm.CREATED
        assert await m.start("c1", "") == FAKE_PID
        assert m.state("c1", "")["status"] == sm.RUNNING
        await spin()
        assert sink.names() == ["create", "start"]  # running: no exit yet

        waiter = asyncio.create_task(m.wait("c1", ""))
        await spin()
        assert not waiter.done()
        fake.exit("c1", "", 3)
        assert m.state("c1", "")["status"] == sm.RUNNING  # ended, exit not yet published
        code, exited_at = await waiter
        assert code == 3 and exited_at > 0
        assert sink.names() == ["create", "start", "exit"]
        state = m.state("c1", "")
        assert (state["status"], state["exit_status"], state["exited_at"]) == (
            sm.STOPPED, 3, exited_at)
        assert sink.args("exit") == ("c1", "", FAKE_PID, 3, exited_at)

        assert await m.delete("c1", "") == (FAKE_PID, 3, exited_at)
        assert sink.trail() == [("create", "c1", ""), ("start", "c1", ""),
                                ("exit", "c1", ""), ("delete", "c1", "")]
        assert sink.args("delete") == ("c1", "", FAKE_PID, 3, exited_at)
        assert ("remove_container", "c1") in fake.calls
        assert "c1" not in m.tasks and "c1" not in fake.containers

    run(scenario())


def test_start_is_published_before_an_exit_during_start(tmp_path: Path) -> None:
    """A process that ends while Start runs: its exit still comes after the start event."""

    async def scenario() -> None:
        m = make_manager(tmp_path)
        await create(m, tmp_path)
        fake_of(m).exit("c1", "", 1)  # gone as soon as it runs
        await m.start("c1", "")
        assert (await m.wait("c1", ""))[0] == 1
        assert sink_of(m).names() == ["create", "start", "exit"]

    run(scenario())


def test_create_event_carries_the_request(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        bundle = write_bundle(tmp_path / "b")
        mounts = [{"type": "bind", "source": "/src", "target": "", "options": ["rbind"]}]
        out = tmp_path / "out.log"
        await m.create("c1", bundle, mounts, False, ("", f"file://{out}", ""))
        assert sink_of(m).args("create") == (
            "c1", bundle, mounts, ("", f"file://{out}", ""), False, FAKE_PID)
        request = fake_of(m).containers["c1"].request
        assert request.rootfs_mounts == tuple(mounts)
        assert request.rootfs == str(tmp_path / "b" / "rootfs")
        assert request.stdin is False and request.pod_member is False
        assert fake_of(m).id == f"{NAMESPACE}-c1"

    run(scenario())


def test_wait_after_exit_answers_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        await started(m, tmp_path)
        fake_of(m).exit("c1", "", 0)
        first = await m.wait("c1", "")
        assert await m.wait("c1", "") == first
        assert first[0] == 0

    run(scenario())


def test_delete_of_a_created_task(tmp_path: Path) -> None:
    """A task deleted before it started: create -> delete, no start or exit."""

    async def scenario() -> None:
        m = make_manager(tmp_path)
        await create(m, tmp_path)
        pid, status, exited_at = await m.delete("c1", "")
        assert (pid, status) == (FAKE_PID, 0) and exited_at > 0
        assert sink_of(m).names() == ["create", "delete"]
        assert fake_of(m).calls == [("launch", "c1"), ("remove_container", "c1")]

    run(scenario())


def test_wait_on_a_created_task_returns_when_it_is_deleted(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        await create(m, tmp_path)
        waiter = asyncio.create_task(m.wait("c1", ""))
        await spin()
        await m.delete("c1", "")
        await asyncio.wait_for(waiter, 0.3)

    run(scenario())


def test_failed_start_stays_created_then_deletes(tmp_path: Path) -> None:
    """A start that fails (missing binary) is an error, no start event, and can be deleted."""

    async def scenario() -> None:
        m = make_manager(tmp_path)
        await create(m, tmp_path)
        fake_of(m).fail_start = ContainerStartError("sleep: not found", 127)
        with pytest.raises(ContainerStartError):
            await m.start("c1", "")
        assert m.state("c1", "")["status"] == sm.CREATED
        assert sink_of(m).names() == ["create"]
        await m.delete("c1", "")
        assert sink_of(m).names() == ["create", "delete"]

    run(scenario())


def test_failed_create_leaves_nothing_behind(tmp_path: Path) -> None:
    """Stdio that cannot be opened: the guest container is removed, the id is free again."""

    async def scenario() -> None:
        m = make_manager(tmp_path)
        bundle = write_bundle(tmp_path / "b")
        with pytest.raises(Exception, match="scheme is not supported"):
            await m.create("c1", bundle, [], False, ("", "binary:///logger", ""))
        fake = fake_of(m)
        assert fake.calls == [("launch", "c1"), ("remove_container", "c1")]
        assert m.tasks == {} and sink_of(m).events == []
        await m.create("c1", bundle, [], False, NO_STDIO)
        assert fake.calls[-1] == ("add_container", "c1")
        assert sink_of(m).names() == ["create"]

    run(scenario())


# --- exec ------------------------------------------------------------------------------------


def test_exec_events_in_containerd_order(tmp_path: Path) -> None:
    """exec-added -> exec-started -> exit(exec) -> delete(exec), between the init's events."""

    async def scenario() -> None:
        m = make_manager(tmp_path)
        sink = sink_of(m)
        await started(m, tmp_path)
        await m.exec("c1", "e1", False, NO_STDIO, {"args": ["ls"], "cwd": "/"})
        assert m.state("c1", "e1")["status"] == sm.CREATED
        assert sink.trail()[-1] == ("exec_added", "c1", "e1")
        assert await m.start("c1", "e1") == FAKE_PID
        fake = fake_of(m)
        assert ("exec_process", "c1", "e1") in fake.calls
        assert fake.process("c1", "e1").process["args"] == ["ls"]
        assert m.state("c1", "e1")["status"] == sm.RUNNING
        await spin()
        assert sink.names() == ["create", "start", "exec_added", "exec_started"]

        fake.exit("c1", "e1", 2)
        code, exited_at = await m.wait("c1", "e1")
        assert code == 2
        assert m.state("c1", "e1")["status"] == sm.STOPPED
        assert m.state("c1", "")["status"] == sm.RUNNING  # the init runs on
        assert await m.delete("c1", "e1") == (FAKE_PID, 2, exited_at)
        assert sink.trail() == [
            ("create", "c1", ""), ("start", "c1", ""), ("exec_added", "c1", "e1"),
            ("exec_started", "c1", "e1"), ("exit", "c1", "e1"), ("delete", "c1", "e1")]
        assert sink.args("exit", "e1") == ("c1", "e1", FAKE_PID, 2, exited_at)
        with pytest.raises(TtrpcError) as gone:
            m.state("c1", "e1")
        assert gone.value.code == NOT_FOUND

    run(scenario())


def test_exec_refusals(tmp_path: Path) -> None:
    """Kill before Start, Start twice, Delete while running, a taken or unknown exec id."""

    async def scenario() -> None:
        m = make_manager(tmp_path)
        await started(m, tmp_path)
        await m.exec("c1", "e1", False, NO_STDIO, {"args": ["ls"], "cwd": "/"})
        with pytest.raises(TtrpcError) as early_kill:
            await m.kill("c1", "e1", signal.SIGTERM, False)
        assert early_kill.value.code == FAILED_PRECONDITION
        with pytest.raises(TtrpcError) as taken:
            await m.exec("c1", "e1", False, NO_STDIO, {"args": ["ls"], "cwd": "/"})
        assert taken.value.code == ALREADY_EXISTS

        await m.start("c1", "e1")
        with pytest.raises(ContainerStateError):
            await m.start("c1", "e1")
        with pytest.raises(ContainerStateError):
            await m.delete("c1", "e1")
        for verb in (m.start("c1", "nope"), m.kill("c1", "nope", 9, False),
                     m.delete("c1", "nope"), m.wait("c1", "nope")):
            with pytest.raises(TtrpcError) as unknown:
                await verb
            assert unknown.value.code == NOT_FOUND
        assert sink_of(m).names().count("exec_started") == 1

        await m.kill("c1", "e1", signal.SIGKILL, False)  # now it may be killed
        assert (await m.wait("c1", "e1"))[0] == 128 + signal.SIGKILL
        with pytest.raises(TtrpcError) as stopped:
            await m.kill("c1", "e1", signal.SIGKILL, False)
        assert stopped.value.code == NOT_FOUND
        await m.delete("c1", "e1")
        assert "oom" not in sink_of(m).names()  # an exec's 137 is no OOM check

    run(scenario())


def test_exec_into_a_created_task_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        await create(m, tmp_path)
        with pytest.raises(ContainerStateError, match="created"):
            await m.exec("c1", "e1", False, NO_STDIO, {"args": ["ls"], "cwd": "/"})
        assert m.tasks["c1"].execs == {}
        assert sink_of(m).names() == ["create"]

    run(scenario())


def test_exec_with_a_bad_spec_fails_at_start(tmp_path: Path) -> None:
    """containerd's Exec only records; the sandbox verb (Start) validates the process."""

    async def scenario() -> None:
        m = make_manager(tmp_path)
        await started(m, tmp_path)
        await m.exec("c1", "e1", False, NO_STDIO, {"args": "ls -l", "cwd": "/"})
        with pytest.raises(ConfigError, match="args"):
            await m.start("c1", "e1")
        assert m.state("c1", "e1")["status"] == sm.CREATED
        assert "exec_started" not in sink_of(m).names()
        assert "e1" not in fake_of(m).containers["c1"].processes
        await m.delete("c1", "e1")  # a never-started exec can go
        assert sink_of(m).trail()[-1] == ("delete", "c1", "e1")

    run(scenario())


# --- pause, resume, kill ----------------------------------------------------------------------


def test_pause_and_resume(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        await started(m, tmp_path)
        await m.pause("c1")
        assert m.state("c1", "")["status"] == sm.PAUSED
        assert sink_of(m).names()[-1] == "paused"
        with pytest.raises(ContainerStateError):
            await m.pause("c1")
        assert m.state("c1", "")["status"] == sm.PAUSED
        await m.resume("c1")
        assert m.state("c1", "")["status"] == sm.RUNNING
        assert sink_of(m).trail() == [("create", "c1", ""), ("start", "c1", ""),
                                      ("paused", "c1", ""), ("resumed", "c1", "")]
        with pytest.raises(ContainerStateError):
            await m.resume("c1")
        assert [c for c in fake_of(m).calls if c[0] != "start_container"] == [
            ("launch", "c1"), ("pause_container", "c1"), ("pause_container", "c1"),
            ("resume_container", "c1"), ("resume_container", "c1")]

    run(scenario())


def test_pause_of_a_created_task_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        await create(m, tmp_path)
        with pytest.raises(ContainerStateError):
            await m.pause("c1")
        assert m.state("c1", "")["status"] == sm.CREATED
        assert sink_of(m).names() == ["create"]

    run(scenario())


def test_kill_reaches_the_sandbox_and_ends_the_init(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        await started(m, tmp_path)
        await m.kill("c1", "", signal.SIGTERM, True)
        fake = fake_of(m)
        assert ("signal_process", "c1", "", str(int(signal.SIGTERM))) in fake.calls
        assert fake.process("c1").signals == [signal.SIGTERM]
        assert (await m.wait("c1", ""))[0] == 128 + signal.SIGTERM
        assert sink_of(m).names() == ["create", "start", "exit"]

    run(scenario())


def test_kill_of_a_stopped_process_is_not_found(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        await started(m, tmp_path)
        fake_of(m).exit("c1", "", 0)
        await m.wait("c1", "")
        with pytest.raises(TtrpcError) as exc:
            await m.kill("c1", "", signal.SIGKILL, False)
        assert exc.value.code == NOT_FOUND

    run(scenario())


def test_kill_while_the_exit_is_on_its_way_is_not_found(tmp_path: Path) -> None:
    """The guest says stopped before the shim has published the exit (output still
    flushing): a Kill then is "already finished" (NotFound), so that containerd's forced
    delete waits for the exit instead of deleting a task it still sees running."""
    async def scenario() -> None:
        m = make_manager(tmp_path)
        await started(m, tmp_path)
        fake = fake_of(m)
        fake.containers["c1"].status = sm.STOPPED  # seen by the sandbox, not yet by the shim
        assert m.state("c1", "")["status"] == sm.RUNNING
        with pytest.raises(TtrpcError) as exc:
            await m.kill("c1", "", signal.SIGKILL, True)
        assert exc.value.code == NOT_FOUND and "already finished" in exc.value.message
        fake.exit("c1", "", 137)
        assert (await m.wait("c1", ""))[0] == 137
        assert m.state("c1", "")["status"] == sm.STOPPED

    run(scenario())


# --- OOM -------------------------------------------------------------------------------------


def test_oom_is_published_before_the_exit(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        await started(m, tmp_path)
        fake = fake_of(m)
        fake.containers["c1"].oom_kills = 1
        fake.exit("c1", "", 137)
        assert (await m.wait("c1", ""))[0] == 137
        assert sink_of(m).trail() == [("create", "c1", ""), ("start", "c1", ""),
                                      ("oom", "c1", ""), ("exit", "c1", "")]

    run(scenario())


def test_sigkill_without_an_oom_kill_is_no_oom(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        await started(m, tmp_path)
        await m.kill("c1", "", signal.SIGKILL, False)
        assert (await m.wait("c1", ""))[0] == 137
        assert sink_of(m).names() == ["create", "start", "exit"]

    run(scenario())


def test_oom_of_a_running_task_is_polled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    """An OOM kill inside a task that keeps running is published too, once per new kill."""
    monkeypatch.setattr(tasks, "OOM_POLL", 0.01)

    async def scenario() -> None:
        m = make_manager(tmp_path)
        await started(m, tmp_path)
        fake = fake_of(m)
        fake.containers["c1"].oom_kills = 1
        await until(lambda: "oom" in sink_of(m).names(), "the OOM event")
        await asyncio.sleep(0.05)  # more polls, no new kill: no new event
        fake.exit("c1", "", 137)  # and the exit check finds nothing new either
        await m.wait("c1", "")
        assert sink_of(m).names() == ["create", "start", "oom", "exit"]

    run(scenario())


def test_oom_is_polled_again_after_a_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.setattr(tasks, "OOM_POLL", 0.01)

    async def scenario() -> None:
        m = make_manager(tmp_path)
        await started(m, tmp_path)
        await m.pause("c1")
        await asyncio.sleep(0.05)  # several poll periods while paused
        await m.resume("c1")
        fake_of(m).containers["c1"].oom_kills = 1
        await until(lambda: "oom" in sink_of(m).names(), "the OOM event", timeout=0.3)

    run(scenario())


# --- errors ------------------------------------------------------------------------------------


def test_delete_of_a_running_task_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        await started(m, tmp_path)
        with pytest.raises(ContainerStateError, match="running"):
            await m.delete("c1", "")
        assert "c1" in m.tasks and "c1" in fake_of(m).containers
        assert "delete" not in sink_of(m).names()
        await m.pause("c1")
        with pytest.raises(ContainerStateError, match="paused"):
            await m.delete("c1", "")

    run(scenario())


def test_start_twice_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        await started(m, tmp_path)
        with pytest.raises(ContainerStateError, match="running"):
            await m.start("c1", "")
        assert sink_of(m).names() == ["create", "start"]
        assert m.state("c1", "")["status"] == sm.RUNNING

    run(scenario())


def test_create_of_an_existing_id_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        await create(m, tmp_path)
        with pytest.raises(TtrpcError) as exc:
            await m.create("c1", str(tmp_path / "bundles" / "c1"), [], False, NO_STDIO)
        assert exc.value.code == ALREADY_EXISTS
        assert fake_of(m).calls == [("launch", "c1")]
        assert sink_of(m).names() == ["create"]

    run(scenario())


def test_unknown_task_is_not_found(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        await create(m, tmp_path)
        calls: list[Callable[[], Any]] = [
            lambda: m.start("nope", ""), lambda: m.kill("nope", "", 9, False),
            lambda: m.delete("nope", ""), lambda: m.wait("nope", ""),
            lambda: m.exec("nope", "e1", False, NO_STDIO, SLEEP), lambda: m.pause("nope"),
            lambda: m.resume("nope"), lambda: m.pids("nope"), lambda: m.stats("nope"),
            lambda: m.update("nope", {}), lambda: m.resize("nope", "", 80, 24),
            lambda: m.state("nope", ""), lambda: m.close_io("nope", "")]
        for call in calls:
            with pytest.raises(TtrpcError) as exc:
                result = call()
                if asyncio.iscoroutine(result):
                    await result
            assert exc.value.code == NOT_FOUND

    run(scenario())


def test_update_validates_resources(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        await started(m, tmp_path)
        with pytest.raises(ConfigError, match="pids"):
            await m.update("c1", {"pids": "lots"})
        assert fake_of(m).containers["c1"].resources == {}
        await m.update("c1", {"pids": {"limit": 64}})
        assert fake_of(m).containers["c1"].resources == {"pids": {"limit": 64}}

    run(scenario())


def test_shutdown_before_any_task(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        assert await m.shutdown() is True  # nothing ever ran: nothing to stop
        await m.destroy()
        assert m.sandbox is None

    run(scenario())


# --- a pod -----------------------------------------------------------------------------------


def test_pod_shares_one_sandbox_and_shuts_down_last(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        await create(m, tmp_path, "pod1", annotations=pod_annotations("sandbox"))
        fake = fake_of(m)
        assert fake.id == f"{NAMESPACE}-pod1"
        assert fake.calls == [("launch", "pod1")]
        await m.start("pod1", "")
        await create(m, tmp_path, "app", annotations=pod_annotations("container"))
        assert fake_of(m) is fake and len(m.tasks) == 2
        assert fake.calls[-1] == ("add_container", "app")
        assert fake.containers["pod1"].request.pod_member is False
        assert fake.containers["app"].request.pod_member is True
        await m.start("app", "")

        fake.exit("app", "", 0)
        await m.wait("app", "")
        await m.delete("app", "")
        assert await m.shutdown() is False  # the pause container remains
        assert not fake.stopped and not fake.destroyed and fake_of(m) is fake

        await m.kill("pod1", "", signal.SIGKILL, False)
        await m.wait("pod1", "")
        await m.delete("pod1", "")
        assert await m.shutdown() is True
        assert fake.stopped and fake.destroyed and m.sandbox is None
        assert [(n, c) for n, c, _ in sink_of(m).trail()] == [
            ("create", "pod1"), ("start", "pod1"), ("create", "app"), ("start", "app"),
            ("exit", "app"), ("delete", "app"), ("exit", "pod1"), ("delete", "pod1")]

    run(scenario())


def test_destroy_ends_running_tasks_with_an_exit(tmp_path: Path) -> None:
    """The VM torn down under running tasks: their processes died (137), and say so."""

    async def scenario() -> None:
        m = make_manager(tmp_path)
        await started(m, tmp_path)
        waiter = asyncio.create_task(m.wait("c1", ""))
        exit_watchers = [w for w in m.tasks["c1"].watchers
                         if getattr(w.get_coro(), "__qualname__", "") == "TaskManager._wait"]
        await spin()
        fake = fake_of(m)
        assert await m.shutdown() is False  # a task remains: no stop
        assert not fake.stopped
        await m.destroy()
        assert fake.destroyed and m.sandbox is None
        await asyncio.wait(exit_watchers, timeout=1.0)
        errors = [w.exception() for w in exit_watchers if w.done()]  # retrieved: no noise
        assert errors == [None]
        assert (await asyncio.wait_for(waiter, 1.0))[0] == 137
        assert sink_of(m).names() == ["create", "start", "exit"]

    run(scenario())


# --- stdio -----------------------------------------------------------------------------------


def test_output_reaches_the_fifos_before_the_exit(tmp_path: Path) -> None:
    """What the process wrote is in containerd's FIFOs by the time its exit is published."""

    async def scenario() -> None:
        out, err = tmp_path / "out", tmp_path / "err"
        os.mkfifo(out)
        os.mkfifo(err)
        out_fd = os.open(out, os.O_RDONLY | os.O_NONBLOCK)
        err_fd = os.open(err, os.O_RDONLY | os.O_NONBLOCK)
        try:
            m = make_manager(tmp_path)
            await started(m, tmp_path, stdio=("", str(out), str(err)))
            io = fake_of(m).process("c1").io
            assert isinstance(io.stdout, FakeStream) and isinstance(io.stderr, FakeStream)
            io.stdout.feed(b"hello ")
            assert await read_fifo(out_fd, 6) == b"hello "
            io.stdout.feed(b"world\n")
            io.stderr.feed(b"oops\n")
            fake_of(m).exit("c1", "", 0)
            await m.wait("c1", "")
            assert sink_of(m).names()[-1] == "exit"
            assert os.read(out_fd, 100) == b"world\n"  # already there: no polling
            assert os.read(err_fd, 100) == b"oops\n"
            await m.delete("c1", "")
        finally:
            os.close(out_fd)
            os.close(err_fd)

    run(scenario())


def test_output_to_a_file_uri(tmp_path: Path) -> None:
    async def scenario() -> None:
        log = tmp_path / "logs" / "c1.log"
        m = make_manager(tmp_path)
        await started(m, tmp_path, stdio=("", f"file://{log}", ""))
        stdout = fake_of(m).process("c1").io.stdout
        assert isinstance(stdout, FakeStream)
        stdout.feed(b"line 1\n")
        stdout.feed(b"line 2\n")
        fake_of(m).exit("c1", "", 0)
        await m.wait("c1", "")
        assert log.read_bytes() == b"line 1\nline 2\n"

    run(scenario())


def test_unconnected_stdio_is_drained_and_stdin_ended(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = make_manager(tmp_path)
        await started(m, tmp_path)
        io = fake_of(m).process("c1").io
        assert io.stdin is None  # no stdin path: the guest gets none
        assert isinstance(io.stdout, FakeStream)
        io.stdout.feed(b"dropped")
        await until(io.stdout.chunks.empty, "stdout drained")
        fake_of(m).exit("c1", "", 0)
        await m.wait("c1", "")

    run(scenario())


def test_stdin_fifo_writer_close_is_eof(tmp_path: Path) -> None:
    async def scenario() -> None:
        stdin = tmp_path / "in"
        os.mkfifo(stdin)
        m = make_manager(tmp_path)
        await started(m, tmp_path, stdio=(str(stdin), "", ""))
        assert fake_of(m).containers["c1"].request.stdin is True
        stream = fake_of(m).process("c1").io.stdin
        assert isinstance(stream, FakeStream)
        writer = await open_writer(stdin)
        try:
            os.write(writer, b"some input\n")
            await until(lambda: bytes(stream.written) == b"some input\n", "stdin delivered")
            assert not stream.closed.is_set()
            os.write(writer, b"more")
        finally:
            os.close(writer)
        await asyncio.wait_for(stream.closed.wait(), 2.0)
        assert bytes(stream.written) == b"some input\nmore"
        fake_of(m).exit("c1", "", 0)
        await m.wait("c1", "")

    run(scenario())


def test_close_io_ends_stdin_without_a_writer(tmp_path: Path) -> None:
    async def scenario() -> None:
        stdin = tmp_path / "in"
        os.mkfifo(stdin)
        m = make_manager(tmp_path)
        await started(m, tmp_path, stdio=(str(stdin), "", ""))
        stream = fake_of(m).process("c1").io.stdin
        assert isinstance(stream, FakeStream)
        await until(lambda: stdin_openers() > 0, "the pump opening the stdin FIFO")
        await spin()
        assert not stream.closed.is_set()
        m.close_io("c1", "")
        await asyncio.wait_for(stream.closed.wait(), 2.0)
        assert stream.written == b""
        # let the pump's blocked open go (it closes what it gets: nobody waits any more)
        with contextlib.suppress(OSError):
            os.close(await open_writer(stdin))
        await until(lambda: stdin_openers() == 0, "the stdin opener thread to end")
        fake_of(m).exit("c1", "", 0)
        await m.wait("c1", "")

    run(scenario())


def test_exec_stdio_through_fifos(tmp_path: Path) -> None:
    async def scenario() -> None:
        stdin, out = tmp_path / "exec-in", tmp_path / "exec-out"
        os.mkfifo(stdin)
        os.mkfifo(out)
        out_fd = os.open(out, os.O_RDONLY | os.O_NONBLOCK)
        try:
            m = make_manager(tmp_path)
            await started(m, tmp_path)
            await m.exec("c1", "e1", False, (str(stdin), str(out), ""),
                         {"args": ["cat"], "cwd": "/"})
            await m.start("c1", "e1")
            io = fake_of(m).process("c1", "e1").io
            assert isinstance(io.stdin, FakeStream) and isinstance(io.stdout, FakeStream)
            writer = await open_writer(stdin)
            os.write(writer, b"ping")
            os.close(writer)
            await asyncio.wait_for(io.stdin.closed.wait(), 2.0)
            assert io.stdin.written == b"ping"
            io.stdout.feed(b"pong")
            assert await read_fifo(out_fd, 4) == b"pong"
            fake_of(m).exit("c1", "e1", 0)
            assert (await m.wait("c1", "e1"))[0] == 0
        finally:
            os.close(out_fd)

    run(scenario())
