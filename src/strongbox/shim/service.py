"""Service implements ``containerd.task.v2.Task`` over the task manager.

Each RPC decodes its request (``convert`` for the parts that are not plain
fields), calls the same verb on :class:`~strongbox.shim.tasks.TaskManager`,
and encodes the response. Errors leave as gRPC status codes: not found,
already exists, failed precondition; Checkpoint is Unimplemented.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf import empty_pb2
from google.protobuf.message import Message

from strongbox import __version__
from strongbox.errors import StrongboxError
from strongbox.shim import convert, metrics
from strongbox.shim.proto import shim_pb2 as pb
from strongbox.shim.proto import task_pb2
from strongbox.shim.tasks import TaskManager
from strongbox.shim.ttrpc.server import RequestContext, Server
from strongbox.shim.ttrpc.status import (
    INTERNAL,
    UNKNOWN,
    TtrpcError,
    invalid_argument,
    unimplemented,
)

TASK_SERVICE = "containerd.task.v2.Task"
EMPTY = empty_pb2.Empty


class TaskService:
    """The RPC handlers; ``on_shutdown`` is called when the shim should exit."""

    def __init__(self, manager: TaskManager, on_shutdown: Callable[[], None]) -> None:
        self.m = manager
        self.on_shutdown = on_shutdown

    def register(self, server: Server) -> None:
        methods: dict[str, tuple[type[Message], Callable[..., Awaitable[Message]]]] = {
            "State": (pb.StateRequest, self.state),
            "Create": (pb.CreateTaskRequest, self.create),
            "Start": (pb.StartRequest, self.start),
            "Delete": (pb.DeleteRequest, self.delete),
            "Pids": (pb.PidsRequest, self.pids),
            "Pause": (pb.PauseRequest, self.pause),
            "Resume": (pb.ResumeRequest, self.resume),
            "Checkpoint": (pb.CheckpointTaskRequest, self.checkpoint),
            "Kill": (pb.KillRequest, self.kill),
            "Exec": (pb.ExecProcessRequest, self.exec),
            "ResizePty": (pb.ResizePtyRequest, self.resize_pty),
            "CloseIO": (pb.CloseIORequest, self.close_io),
            "Update": (pb.UpdateTaskRequest, self.update),
            "Wait": (pb.WaitRequest, self.wait),
            "Stats": (pb.StatsRequest, self.stats),
            "Connect": (pb.ConnectRequest, self.connect),
            "Shutdown": (pb.ShutdownRequest, self.shutdown),
        }
        server.register_typed(TASK_SERVICE, {name: (cls, _errors(fn))
                                             for name, (cls, fn) in methods.items()})

    async def state(self, req: pb.StateRequest, ctx: RequestContext) -> pb.StateResponse:
        s = self.m.state(req.id, req.exec_id)
        response = pb.StateResponse(
            id=s["id"], exec_id=s["exec_id"], bundle=s["bundle"], pid=s["pid"],
            status=convert.status_to_proto(s["status"]), stdin=s["stdin"],
            stdout=s["stdout"], stderr=s["stderr"], terminal=s["terminal"],
            exit_status=s["exit_status"])
        if s["exited_at"]:
            response.exited_at.CopyFrom(convert.timestamp(s["exited_at"]))
        return response

    async def create(self, req: pb.CreateTaskRequest, ctx: RequestContext
                     ) -> pb.CreateTaskResponse:
        if req.checkpoint or req.parent_checkpoint:
            raise unimplemented("restoring from a checkpoint is not supported")
        try:
            mounts = convert.mounts_from_request(req)
        except ValueError as exc:
            raise invalid_argument(str(exc)) from None
        pid = await self.m.create(req.id, req.bundle, mounts, req.terminal,
                                  (req.stdin, req.stdout, req.stderr))
        return pb.CreateTaskResponse(pid=pid)

    async def start(self, req: pb.StartRequest, ctx: RequestContext) -> pb.StartResponse:
        return pb.StartResponse(pid=await self.m.start(req.id, req.exec_id))

    async def delete(self, req: pb.DeleteRequest, ctx: RequestContext) -> pb.DeleteResponse:
        pid, status, exited_at = await self.m.delete(req.id, req.exec_id)
        response = pb.DeleteResponse(pid=pid, exit_status=status)
        if exited_at:
            response.exited_at.CopyFrom(convert.timestamp(exited_at))
        return response

    async def pids(self, req: pb.PidsRequest, ctx: RequestContext) -> pb.PidsResponse:
        # Host pids only (see TaskManager.pids); ``info`` stays empty: containerd's
        # only type for it (runc's ProcessDetails, an exec id) has no guest processes.
        pids = await self.m.pids(req.id)
        return pb.PidsResponse(processes=[task_pb2.ProcessInfo(pid=p) for p in pids])

    async def pause(self, req: pb.PauseRequest, ctx: RequestContext) -> Message:
        await self.m.pause(req.id)
        return EMPTY()

    async def resume(self, req: pb.ResumeRequest, ctx: RequestContext) -> Message:
        await self.m.resume(req.id)
        return EMPTY()

    async def checkpoint(self, req: pb.CheckpointTaskRequest, ctx: RequestContext) -> Message:
        raise unimplemented("checkpoint is not supported: a VM's state is not a CRIU image")

    async def kill(self, req: pb.KillRequest, ctx: RequestContext) -> Message:
        await self.m.kill(req.id, req.exec_id, req.signal, req.all)
        return EMPTY()

    async def exec(self, req: pb.ExecProcessRequest, ctx: RequestContext) -> Message:
        try:
            spec = convert.process_spec_from_any(req.spec)
        except ValueError as exc:
            raise invalid_argument(str(exc)) from None
        await self.m.exec(req.id, req.exec_id, req.terminal,
                          (req.stdin, req.stdout, req.stderr), spec)
        return EMPTY()

    async def resize_pty(self, req: pb.ResizePtyRequest, ctx: RequestContext) -> Message:
        await self.m.resize(req.id, req.exec_id, req.width, req.height)
        return EMPTY()

    async def close_io(self, req: pb.CloseIORequest, ctx: RequestContext) -> Message:
        if req.stdin:
            self.m.close_io(req.id, req.exec_id)
        return EMPTY()

    async def update(self, req: pb.UpdateTaskRequest, ctx: RequestContext) -> Message:
        try:
            resources = convert.resources_from_any(req.resources)
        except ValueError as exc:
            raise invalid_argument(str(exc)) from None
        await self.m.update(req.id, resources)
        return EMPTY()

    async def wait(self, req: pb.WaitRequest, ctx: RequestContext) -> pb.WaitResponse:
        status, exited_at = await self.m.wait(req.id, req.exec_id)
        response = pb.WaitResponse(exit_status=status)
        if exited_at:
            response.exited_at.CopyFrom(convert.timestamp(exited_at))
        return response

    async def stats(self, req: pb.StatsRequest, ctx: RequestContext) -> pb.StatsResponse:
        stats = await self.m.stats(req.id)
        try:
            return pb.StatsResponse(stats=metrics.stats_any(stats))
        except ValueError as exc:  # the guest reported nonsense
            raise TtrpcError(INTERNAL, f"guest statistics: {exc}") from None

    async def connect(self, req: pb.ConnectRequest, ctx: RequestContext) -> pb.ConnectResponse:
        task = self.m.tasks.get(req.id)
        return pb.ConnectResponse(shim_pid=os.getpid(),
                                  task_pid=task.init.pid if task else 0,
                                  version=__version__)

    async def shutdown(self, req: pb.ShutdownRequest, ctx: RequestContext) -> Message:
        if req.now or await self.m.shutdown():
            asyncio.get_running_loop().call_soon(self.on_shutdown)
        return EMPTY()


def _errors(fn: Callable[..., Awaitable[Message]]) -> Callable[..., Awaitable[Message]]:
    """Translate strongbox's errors into gRPC statuses at this one boundary."""
    async def wrapper(req: Any, ctx: RequestContext) -> Message:
        try:
            return await fn(req, ctx)
        except TtrpcError:
            raise
        except StrongboxError as exc:
            raise TtrpcError(_code_for(exc), str(exc)) from exc

    wrapper.__name__ = fn.__name__
    return wrapper


def _code_for(exc: StrongboxError) -> int:
    from strongbox.errors import ConfigError, ContainerStartError, ContainerStateError
    from strongbox.shim.ttrpc import status

    code = getattr(exc, "code", None)  # SandboxRequestError carries the agent's code
    by_agent = {"not_found": status.NOT_FOUND, "exists": status.ALREADY_EXISTS,
                "invalid_state": status.FAILED_PRECONDITION,
                "invalid_params": status.INVALID_ARGUMENT}
    if isinstance(code, str) and code in by_agent:
        return by_agent[code]
    if isinstance(exc, ContainerStateError):
        return status.FAILED_PRECONDITION
    if isinstance(exc, ConfigError):
        return status.INVALID_ARGUMENT
    if isinstance(exc, ContainerStartError):
        return status.FAILED_PRECONDITION
    return UNKNOWN
