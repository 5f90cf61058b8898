"""Container requests: create, start, wait, signal, resize, remove.

The names match the verbs of the host's sandbox library (``create_container``
there sends ``create_container`` here), so grepping a verb walks the whole
feature. The container library is imported on first use, not at boot.
"""

from __future__ import annotations

import os

from strongbox.agent import containers as table
from strongbox.agent import share
from strongbox.agent.handlers import handler
from strongbox.agent.server import EPOLLIN, RequestError
from strongbox.protocol import E_EXISTS, E_INVALID_PARAMS, E_NOT_FOUND, check_params

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from strongbox.agent.server import Context

CONTAINERS: dict[str, table.GuestContainer] = {}
E_CONTAINER = "container_error"


def _container(params: dict[str, Any]) -> table.GuestContainer:
    check_params(params, {"id": str})
    container = CONTAINERS.get(params["id"])
    if container is None:
        raise RequestError(E_NOT_FOUND, f"container {params['id']!r} does not exist")
    return container


def _process(params: dict[str, Any]) -> table.GuestProcess:
    container = _container(params)
    exec_id = params.get("exec_id") or ""
    proc = container.process(exec_id)
    if proc is None:
        raise RequestError(E_NOT_FOUND, f"process {exec_id!r} of {container.id!r} does not exist")
    return proc


@handler("create_container")
def create_container(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Build the container up to its start barrier: create-time errors surface here."""
    check_params(params, {"id": str, "spec": dict, "rootfs": dict, "mounts": dict,
                          "stdio": dict})
    from strongbox.container.errors import ContainerError
    from strongbox.container.launcher import LaunchRequest, launch

    cid = params["id"]
    if cid in CONTAINERS:
        raise RequestError(E_EXISTS, f"container {cid!r} already exists")
    spec = params["spec"]
    stdio = params["stdio"]
    process = spec.get("process") or {}
    console = process.get("consoleSize")
    size = (console["height"], console["width"]) if console else None
    cgroup = None
    to_close: list[int] = []
    ours: dict[str, int] = {}
    try:
        cgroup = table.cgroup_for(cid, (spec.get("linux") or {}).get("resources") or {})
        rootfs = table.rootfs_for(cid, params["rootfs"])
        sources = {int(k): share.shared_path(v) for k, v in params["mounts"].items()}
        child_stdio, ours, to_close = table.open_stdio(stdio, size)
        launched = launch(LaunchRequest(
            container_id=cid, spec=spec, rootfs=rootfs, mount_sources=sources,
            stdio=child_stdio, terminal=bool(stdio.get("terminal")), cgroup=cgroup.path,
        ))
    except (ContainerError, OSError, ValueError) as exc:
        for fd in list(ours.values()):
            os.close(fd)
        _cleanup(cid, cgroup)
        raise RequestError(E_CONTAINER, str(exc)) from None
    finally:
        for fd in to_close:
            os.close(fd)
    container = table.GuestContainer(cid, spec, cgroup)
    proc = table.GuestProcess(cid, "", launched)
    container.init = proc
    CONTAINERS[cid] = container
    table.attach_stdio(ctx.server, proc, stdio, ours)
    ctx.server.reaper.watch(proc.pid, proc.exited)
    return {"pid": proc.pid}


@handler("start_container")
def start_container(ctx: Context, params: dict[str, Any]) -> Any:
    """Release the barrier; answer once exec has succeeded or failed."""
    proc = _process(params)
    if proc.started:
        raise RequestError(E_INVALID_PARAMS, "process already started")
    proc.started = True
    deferred = ctx.defer()
    fd = proc.launched.error_fd
    chunks: list[bytes] = []

    def on_error_pipe(_mask: int) -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        if data:
            chunks.append(data)
            return
        ctx.server.unwatch(fd)
        message = b"".join(chunks).decode(errors="replace").strip()
        proc.launched.close()
        if message:
            deferred.reject(E_CONTAINER, message, {"exit_code": _exec_exit_code(message)})
        else:
            deferred.resolve({"pid": proc.pid})

    os.set_blocking(fd, False)
    ctx.server.watch(fd, EPOLLIN, on_error_pipe)
    proc.launched.start()
    return None


@handler("wait_process")
def wait_process(ctx: Context, params: dict[str, Any]) -> Any:
    proc = _process(params)
    if proc.status is not None:
        return table.exit_info(proc.status)
    proc.waiters.append(ctx.defer())
    return None


@handler("signal_process")
def signal_process(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    check_params(params, {"id": str, "signal": int})
    container = _container(params)
    sig = params["signal"]
    if params.get("all") and container.cgroup is not None:
        for pid in container.cgroup.procs():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return {}
    proc = _process(params)
    if proc.status is not None:
        raise RequestError(E_NOT_FOUND, f"process of {container.id!r} is not running")
    os.kill(proc.pid, sig)
    return {}


@handler("resize_pty")
def resize_pty(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    check_params(params, {"id": str, "rows": int, "cols": int})
    _process(params).resize(params["rows"], params["cols"])
    return {}


@handler("remove_container")
def remove_container(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    container = _container(params)
    _cleanup(container.id, container.cgroup)
    del CONTAINERS[container.id]
    return {}


def _exec_exit_code(message: str) -> int:
    """What runc-compatible runtimes exit with when the process cannot start."""
    lowered = message.lower()
    if "not found" in lowered or "no such file" in lowered:
        return 127
    if "permission denied" in lowered:
        return 126
    return 1


def _cleanup(cid: str, cgroup: Any) -> None:
    if cgroup is not None:
        try:
            cgroup.destroy()
        except Exception:
            pass
    share.release_rootfs(cid)
