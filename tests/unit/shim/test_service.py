"""The containerd.task.v2.Task handlers over ttrpc: messages in, gRPC codes out.

containerd reads a shim's answers through errdefs, so the code of each
refusal is part of the protocol: a finished process is NotFound to Kill, a
running task is FailedPrecondition to Delete, a taken id is AlreadyExists, a
bad spec or resource update is InvalidArgument. These tests register
:class:`strongbox.shim.service.TaskService` (over a TaskManager whose sandbox
is a FakeSandbox) on a real ttrpc Server on a unix socket, and call it with
the ttrpc Client and the generated request messages, as containerd would:
decoding, the ``_errors`` translation and encoding all run. The table of
``_code_for`` is also checked directly. No VM, no containerd, no root.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import empty_pb2
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.message import Message

from strongbox import __version__
from strongbox import status as sm
from strongbox.errors import (
    ConfigError,
    ContainerStartError,
    ContainerStateError,
    SandboxError,
    StrongboxError,
)
from strongbox.oci.errors import SpecError
from strongbox.sandbox.replies import SandboxRequestError
from strongbox.shim.convert import LINUX_RESOURCES_TYPE_URL, PROCESS_TYPE_URL
from strongbox.shim.metrics import METRICS_TYPE_URL
from strongbox.shim.proto import shim_pb2 as pb
from strongbox.shim.proto import task_pb2
from strongbox.shim.service import TASK_SERVICE, TaskService, _errors
from strongbox.shim.tasks import TaskManager
from strongbox.shim.ttrpc.client import Client
from strongbox.shim.ttrpc.server import RequestContext, Server
from strongbox.shim.ttrpc.status import (
    ALREADY_EXISTS,
    FAILED_PRECONDITION,
    INVALID_ARGUMENT,
    NOT_FOUND,
    UNIMPLEMENTED,
    UNKNOWN,
    TtrpcError,
    code_name,
)
from tests.framework.fake_sandbox import FakeSandbox, FakeStream
from tests.unit.shim.test_tasks import (
    FAKE_PID,
    RecordingSink,
    make_manager,
    open_writer,
    pod_annotations,
    run,
    stdin_openers,
    until,
    write_bundle,
)
from tests.unit.shim.ttrpc.harness import serving

EMPTY = empty_pb2.Empty


# --- helpers ---------------------------------------------------------------------------------


def process_any(process: object) -> AnyProto:
    """An OCI Process as containerd's typeurl packs it for ExecProcessRequest.spec."""
    return AnyProto(type_url=PROCESS_TYPE_URL, value=json.dumps(process).encode())


def resources_any(resources: object) -> AnyProto:
    """OCI LinuxResources as containerd packs them for UpdateTaskRequest.resources."""
    return AnyProto(type_url=LINUX_RESOURCES_TYPE_URL, value=json.dumps(resources).encode())


LS = process_any({"args": ["ls"], "cwd": "/", "env": ["PATH=/bin"]})


@dataclass
class Shim:
    """A TaskService on a live ttrpc socket, its manager and what it published."""

    client: Client
    manager: TaskManager
    tmp: Path
    shutdowns: list[str] = field(default_factory=list)

    @property
    def sink(self) -> RecordingSink:
        assert isinstance(self.manager.events, RecordingSink)
        return self.manager.events

    @property
    def fake(self) -> FakeSandbox:
        assert isinstance(self.manager.sandbox, FakeSandbox)
        return self.manager.sandbox

    async def call(self, method: str, request: Message,
                   response_type: type[Any] = EMPTY) -> Any:
        return await self.client.call_typed(TASK_SERVICE, method, request, response_type,
                                            timeout=5)

    async def code(self, method: str, request: Message) -> int:
        """The gRPC code the call fails with (a test failure if it succeeds)."""
        try:
            await self.call(method, request)
        except TtrpcError as exc:
            return exc.code
        raise AssertionError(f"{method} succeeded, expected an error")

    async def create(self, cid: str = "c1", *, annotations: dict[str, str] | None = None,
                     **fields: Any) -> int:
        bundle = write_bundle(self.tmp / "bundles" / cid, annotations)
        response = await self.call("Create", pb.CreateTaskRequest(id=cid, bundle=bundle,
                                                                  **fields),
                                   pb.CreateTaskResponse)
        return int(response.pid)

    async def start(self, cid: str = "c1", exec_id: str = "") -> int:
        response = await self.call("Start", pb.StartRequest(id=cid, exec_id=exec_id),
                                   pb.StartResponse)
        return int(response.pid)

    async def status(self, cid: str = "c1", exec_id: str = "") -> int:
        state = await self.call("State", pb.StateRequest(id=cid, exec_id=exec_id),
                                pb.StateResponse)
        return int(state.status)

    async def wait(self, cid: str = "c1", exec_id: str = "") -> pb.WaitResponse:
        response: pb.WaitResponse = await self.call(
            "Wait", pb.WaitRequest(id=cid, exec_id=exec_id), pb.WaitResponse)
        return response


@asynccontextmanager
async def shim(tmp_path: Path) -> AsyncIterator[Shim]:
    manager = make_manager(tmp_path)
    server = Server(shutdown_timeout=0.5)
    shutdowns: list[str] = []
    TaskService(manager, on_shutdown=lambda: shutdowns.append("shutdown")).register(server)
    async with serving(server) as (_, path):
        client = await Client.connect(path)
        try:
            yield Shim(client, manager, tmp_path, shutdowns)
        finally:
            await client.close()
            await end_all(manager)
            await manager.destroy()


async def end_all(manager: TaskManager) -> None:
    """End every started process the normal way (destroy() would leave their exits unsent)."""
    fake = manager.sandbox
    if not isinstance(fake, FakeSandbox):
        return
    live = [proc for task in manager.tasks.values() for proc in (task.init, *task.execs.values())
            if proc.status in (sm.RUNNING, sm.PAUSED)]
    for proc in live:
        fake.exit(proc.container_id, proc.exec_id, 0)
    for proc in live:
        await asyncio.wait_for(proc.exited.wait(), 2.0)


def scenario(test: Callable[[Shim], Awaitable[None]], tmp_path: Path) -> None:
    """Run ``test`` against a fresh shim, on a fresh loop, within 10 s."""

    async def body() -> None:
        async with shim(tmp_path) as s:
            await test(s)

    run(body())


# --- lifecycles ------------------------------------------------------------------------------


def test_task_lifecycle(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        assert await s.create(stdout=f"file://{tmp_path}/out.log") == FAKE_PID
        state = await s.call("State", pb.StateRequest(id="c1"), pb.StateResponse)
        assert (state.id, state.bundle, state.pid, state.status, state.stdout) == (
            "c1", str(tmp_path / "bundles" / "c1"), FAKE_PID, task_pb2.CREATED,
            f"file://{tmp_path}/out.log")
        assert not state.HasField("exited_at")
        assert await s.start() == FAKE_PID
        assert await s.status() == task_pb2.RUNNING

        waiting = asyncio.create_task(s.wait())
        await asyncio.sleep(0.02)
        assert not waiting.done() and s.sink.names() == ["create", "start"]
        s.fake.exit("c1", "", 7)
        waited = await waiting
        assert waited.exit_status == 7 and waited.exited_at.seconds > 0
        state = await s.call("State", pb.StateRequest(id="c1"), pb.StateResponse)
        assert (state.status, state.exit_status) == (task_pb2.STOPPED, 7)
        assert state.exited_at == waited.exited_at

        deleted = await s.call("Delete", pb.DeleteRequest(id="c1"), pb.DeleteResponse)
        assert (deleted.pid, deleted.exit_status) == (FAKE_PID, 7)
        assert deleted.exited_at == waited.exited_at
        assert s.sink.trail() == [("create", "c1", ""), ("start", "c1", ""),
                                  ("exit", "c1", ""), ("delete", "c1", "")]
        assert await s.code("State", pb.StateRequest(id="c1")) == NOT_FOUND

    scenario(test, tmp_path)


def test_exec_lifecycle_and_refusals(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        await s.create()
        await s.start()
        await s.call("Exec", pb.ExecProcessRequest(id="c1", exec_id="e1", spec=LS))
        assert await s.status("c1", "e1") == task_pb2.CREATED
        kill = pb.KillRequest(id="c1", exec_id="e1", signal=signal.SIGTERM)
        assert await s.code("Kill", kill) == FAILED_PRECONDITION
        assert await s.code("Exec", pb.ExecProcessRequest(id="c1", exec_id="e1", spec=LS)
                            ) == ALREADY_EXISTS

        assert await s.start("c1", "e1") == FAKE_PID
        assert await s.status("c1", "e1") == task_pb2.RUNNING
        assert await s.code("Start", pb.StartRequest(id="c1", exec_id="e1")
                            ) == FAILED_PRECONDITION
        assert await s.code("Delete", pb.DeleteRequest(id="c1", exec_id="e1")
                            ) == FAILED_PRECONDITION

        s.fake.exit("c1", "e1", 5)
        assert (await s.wait("c1", "e1")).exit_status == 5
        assert await s.code("Kill", kill) == NOT_FOUND  # a finished process
        deleted = await s.call("Delete", pb.DeleteRequest(id="c1", exec_id="e1"),
                               pb.DeleteResponse)
        assert deleted.exit_status == 5
        assert s.sink.trail() == [
            ("create", "c1", ""), ("start", "c1", ""), ("exec_added", "c1", "e1"),
            ("exec_started", "c1", "e1"), ("exit", "c1", "e1"), ("delete", "c1", "e1")]
        assert await s.status() == task_pb2.RUNNING

    scenario(test, tmp_path)


def test_pause_and_resume(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        await s.create()
        assert await s.code("Pause", pb.PauseRequest(id="c1")) == FAILED_PRECONDITION
        await s.start()
        await s.call("Pause", pb.PauseRequest(id="c1"))
        assert await s.status() == task_pb2.PAUSED
        assert await s.code("Exec", pb.ExecProcessRequest(id="c1", exec_id="e1", spec=LS)
                            ) == FAILED_PRECONDITION
        await s.call("Resume", pb.ResumeRequest(id="c1"))
        assert await s.status() == task_pb2.RUNNING
        assert await s.code("Resume", pb.ResumeRequest(id="c1")) == FAILED_PRECONDITION
        assert s.sink.names() == ["create", "start", "paused", "resumed"]

    scenario(test, tmp_path)


def test_oom_before_exit(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        await s.create()
        await s.start()
        s.fake.containers["c1"].oom_kills = 1
        s.fake.exit("c1", "", 137)
        assert (await s.wait()).exit_status == 137
        assert s.sink.names() == ["create", "start", "oom", "exit"]

    scenario(test, tmp_path)


# --- error codes -----------------------------------------------------------------------------


def test_kill_of_a_stopped_task_is_not_found(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        await s.create()
        await s.start()
        await s.call("Kill", pb.KillRequest(id="c1", signal=signal.SIGKILL))
        assert (await s.wait()).exit_status == 128 + signal.SIGKILL
        assert await s.code("Kill", pb.KillRequest(id="c1", signal=signal.SIGKILL)
                            ) == NOT_FOUND

    scenario(test, tmp_path)


def test_delete_of_a_running_task_is_failed_precondition(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        await s.create()
        await s.start()
        assert await s.code("Delete", pb.DeleteRequest(id="c1")) == FAILED_PRECONDITION
        assert await s.status() == task_pb2.RUNNING

    scenario(test, tmp_path)


def test_exec_into_a_created_task_is_failed_precondition(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        await s.create()
        assert await s.code("Exec", pb.ExecProcessRequest(id="c1", exec_id="e1", spec=LS)
                            ) == FAILED_PRECONDITION

    scenario(test, tmp_path)


def test_start_twice_is_failed_precondition(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        await s.create()
        await s.start()
        assert await s.code("Start", pb.StartRequest(id="c1")) == FAILED_PRECONDITION
        assert s.sink.names() == ["create", "start"]

    scenario(test, tmp_path)


def test_failed_start_is_failed_precondition(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        await s.create()
        s.fake.fail_start = ContainerStartError("exec: sleep: not found", 127)
        assert await s.code("Start", pb.StartRequest(id="c1")) == FAILED_PRECONDITION
        assert await s.status() == task_pb2.CREATED
        await s.call("Delete", pb.DeleteRequest(id="c1"), pb.DeleteResponse)
        assert s.sink.names() == ["create", "delete"]

    scenario(test, tmp_path)


def test_create_of_an_existing_id_is_already_exists(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        await s.create()
        again = pb.CreateTaskRequest(id="c1", bundle=str(tmp_path / "bundles" / "c1"))
        assert await s.code("Create", again) == ALREADY_EXISTS
        assert s.sink.names() == ["create"]

    scenario(test, tmp_path)


def test_create_with_a_bad_bundle_is_invalid_argument(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        empty = tmp_path / "empty"
        empty.mkdir()
        assert await s.code("Create", pb.CreateTaskRequest(id="c1", bundle=str(empty))
                            ) == INVALID_ARGUMENT
        no_type = pb.CreateTaskRequest(id="c2", bundle=str(empty))
        no_type.rootfs.add(source="/x")
        assert await s.code("Create", no_type) == INVALID_ARGUMENT
        assert s.manager.tasks == {} and s.sink.events == []

    scenario(test, tmp_path)


def test_unknown_task_is_not_found(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        await s.create()
        requests: list[tuple[str, Message]] = [
            ("State", pb.StateRequest(id="nope")), ("Start", pb.StartRequest(id="nope")),
            ("Delete", pb.DeleteRequest(id="nope")), ("Pids", pb.PidsRequest(id="nope")),
            ("Pause", pb.PauseRequest(id="nope")), ("Resume", pb.ResumeRequest(id="nope")),
            ("Kill", pb.KillRequest(id="nope", signal=9)),
            ("Exec", pb.ExecProcessRequest(id="nope", exec_id="e1", spec=LS)),
            ("ResizePty", pb.ResizePtyRequest(id="nope", width=80, height=24)),
            ("CloseIO", pb.CloseIORequest(id="nope", stdin=True)),
            ("Update", pb.UpdateTaskRequest(id="nope")), ("Wait", pb.WaitRequest(id="nope")),
            ("Stats", pb.StatsRequest(id="nope")),
            # a known task, an unknown process
            ("State", pb.StateRequest(id="c1", exec_id="nope")),
            ("Wait", pb.WaitRequest(id="c1", exec_id="nope")),
        ]
        for method, request in requests:
            code = await s.code(method, request)
            assert code == NOT_FOUND, f"{method}({request}): {code_name(code)}"

    scenario(test, tmp_path)


def test_update_with_bad_resources_is_invalid_argument(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        await s.create()
        await s.start()
        bad = pb.UpdateTaskRequest(id="c1", resources=resources_any({"pids": "lots"}))
        assert await s.code("Update", bad) == INVALID_ARGUMENT  # the sandbox's ConfigError
        wrong_url = pb.UpdateTaskRequest(id="c1", resources=AnyProto(
            type_url="type.googleapis.com/LinuxResources", value=b"{}"))
        assert await s.code("Update", wrong_url) == INVALID_ARGUMENT  # convert's ValueError
        assert s.fake.containers["c1"].resources == {}

        await s.call("Update", pb.UpdateTaskRequest(id="c1"))  # annotations only: no change
        await s.call("Update", pb.UpdateTaskRequest(
            id="c1", resources=resources_any({"pids": {"limit": 32}})))
        assert s.fake.containers["c1"].resources == {"pids": {"limit": 32}}

    scenario(test, tmp_path)


def test_exec_with_a_bad_spec_is_invalid_argument(tmp_path: Path) -> None:
    """A malformed process fails at Start (the sandbox validates); a missing one at Exec."""

    async def test(s: Shim) -> None:
        await s.create()
        await s.start()
        bad = process_any({"args": "ls -l", "cwd": "/"})
        await s.call("Exec", pb.ExecProcessRequest(id="c1", exec_id="e1", spec=bad))
        assert await s.code("Start", pb.StartRequest(id="c1", exec_id="e1")
                            ) == INVALID_ARGUMENT
        assert await s.status("c1", "e1") == task_pb2.CREATED
        assert await s.code("Exec", pb.ExecProcessRequest(id="c1", exec_id="e2")
                            ) == INVALID_ARGUMENT
        not_json = AnyProto(type_url=PROCESS_TYPE_URL, value=b"{oops")
        assert await s.code("Exec", pb.ExecProcessRequest(id="c1", exec_id="e3",
                                                          spec=not_json)) == INVALID_ARGUMENT
        assert s.sink.names() == ["create", "start", "exec_added"]

    scenario(test, tmp_path)


def test_checkpoint_is_unimplemented(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        await s.create()
        assert await s.code("Checkpoint", pb.CheckpointTaskRequest(id="c1", path="/x")
                            ) == UNIMPLEMENTED
        bundle = write_bundle(tmp_path / "bundles" / "c2")
        restore = pb.CreateTaskRequest(id="c2", bundle=bundle, checkpoint="/ckpt")
        assert await s.code("Create", restore) == UNIMPLEMENTED
        assert "c2" not in s.manager.tasks

    scenario(test, tmp_path)


# --- the rest of the API -----------------------------------------------------------------------


def test_connect_pids_stats_resize(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        connect = await s.call("Connect", pb.ConnectRequest(id="c1"), pb.ConnectResponse)
        assert (connect.shim_pid, connect.task_pid, connect.version) == (
            os.getpid(), 0, __version__)
        await s.create()
        await s.start()
        connect = await s.call("Connect", pb.ConnectRequest(id="c1"), pb.ConnectResponse)
        assert connect.task_pid == FAKE_PID
        pids = await s.call("Pids", pb.PidsRequest(id="c1"), pb.PidsResponse)
        # the task's host pid (the VMM's), never the guest's pids (7 in the fake)
        assert [p.pid for p in pids.processes] == [FAKE_PID]
        stats = await s.call("Stats", pb.StatsRequest(id="c1"), pb.StatsResponse)
        assert stats.stats.type_url == METRICS_TYPE_URL and stats.stats.value
        await s.call("ResizePty", pb.ResizePtyRequest(id="c1", width=80, height=24))
        assert s.fake.calls[-1] == ("resize_pty", "c1", "", "24x80")

    scenario(test, tmp_path)


def test_close_io_ends_stdin(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        stdin = tmp_path / "in"
        os.mkfifo(stdin)
        await s.create(stdin=str(stdin))
        await s.start()
        stream = s.fake.process("c1").io.stdin
        assert isinstance(stream, FakeStream)
        await s.call("CloseIO", pb.CloseIORequest(id="c1", stdin=False))  # nothing to close
        await asyncio.sleep(0.02)
        assert not stream.closed.is_set()
        await s.call("CloseIO", pb.CloseIORequest(id="c1", stdin=True))
        await asyncio.wait_for(stream.closed.wait(), 2.0)
        os.close(await open_writer(stdin))  # let the pump's blocked open of the FIFO go
        await until(lambda: stdin_openers() == 0, "the stdin opener thread to end")

    scenario(test, tmp_path)


def test_pod_shutdown_once_the_last_task_is_deleted(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        await s.create("pod1", annotations=pod_annotations("sandbox"))
        await s.create("app", annotations=pod_annotations("container"))
        fake = s.fake
        assert fake.calls == [("launch", "pod1"), ("add_container", "app")]
        assert fake.containers["app"].request.pod_member is True

        await s.call("Delete", pb.DeleteRequest(id="app"), pb.DeleteResponse)
        await s.call("Shutdown", pb.ShutdownRequest(id="app"))
        await asyncio.sleep(0.02)
        assert s.shutdowns == [] and not fake.stopped  # the sandbox task remains

        await s.call("Delete", pb.DeleteRequest(id="pod1"), pb.DeleteResponse)
        await s.call("Shutdown", pb.ShutdownRequest(id="pod1"))
        await until(lambda: s.shutdowns == ["shutdown"], "on_shutdown")
        assert fake.stopped and fake.destroyed and s.manager.sandbox is None

    scenario(test, tmp_path)


def test_shutdown_now_exits_whatever_runs(tmp_path: Path) -> None:
    async def test(s: Shim) -> None:
        await s.create()
        await s.start()
        await s.call("Shutdown", pb.ShutdownRequest(id="c1", now=True))
        await until(lambda: s.shutdowns == ["shutdown"], "on_shutdown")
        assert "c1" in s.manager.tasks  # main's teardown destroys the VM, not the handler

    scenario(test, tmp_path)


# --- the error table -------------------------------------------------------------------------


CTX = RequestContext(TASK_SERVICE, "Test", {}, None, 1)


@pytest.mark.parametrize(("error", "code"), [
    (SandboxRequestError("no such container", "not_found"), NOT_FOUND),
    (SandboxRequestError("taken", "exists"), ALREADY_EXISTS),
    (SandboxRequestError("it is stopped", "invalid_state", "stopped"), FAILED_PRECONDITION),
    (SandboxRequestError("bad params", "invalid_params"), INVALID_ARGUMENT),
    (SandboxRequestError("cgroup write failed", "container_error"), UNKNOWN),
    (ContainerStateError("running", ("stopped",), container_id="c1", operation="delete"),
     FAILED_PRECONDITION),
    (ConfigError("bad value"), INVALID_ARGUMENT),
    (SpecError("process.args", "an array", "a string"), INVALID_ARGUMENT),
    (ContainerStartError("not found", 127), FAILED_PRECONDITION),
    (SandboxError("the VM is gone"), UNKNOWN),
    (StrongboxError("anything else"), UNKNOWN),
])
def test_strongbox_errors_become_grpc_codes(error: StrongboxError, code: int) -> None:
    async def handler(req: Any, ctx: RequestContext) -> Message:
        raise error

    async def call() -> None:
        with pytest.raises(TtrpcError) as exc:
            await _errors(handler)(pb.StateRequest(id="c1"), CTX)
        assert exc.value.code == code, code_name(exc.value.code)
        assert exc.value.message == str(error)
        assert exc.value.__cause__ is error

    run(call())


def test_other_errors_pass_through_unchanged() -> None:
    """TtrpcErrors keep their code; foreign exceptions are the server's to report."""
    mine = TtrpcError(NOT_FOUND, "task c1 does not exist")
    for raised in (mine, RuntimeError("bug")):
        async def handler(req: Any, ctx: RequestContext, raised: Exception = raised) -> Message:
            raise raised

        async def call(handler: Callable[..., Awaitable[Message]] = handler,
                       raised: Exception = raised) -> None:
            with pytest.raises(type(raised)) as exc:
                await _errors(handler)(pb.StateRequest(id="c1"), CTX)
            assert exc.value is raised

        run(call())
