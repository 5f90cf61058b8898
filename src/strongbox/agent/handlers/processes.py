"""Process requests: exec, wait, signal, resize, list the processes of a container.

A process is named by the container id and an ``exec_id``; the empty
exec id is the container's init. Exec'd processes are direct children of
the agent like the init, so the reaper records their exit statuses the
same way, and one exiting never touches the others or the init.
"""

from __future__ import annotations

import os

from strongbox import status as sm
from strongbox.agent import containers as table
from strongbox.agent import procfs
from strongbox.agent.registry import handler
from strongbox.agent.server import RequestError
from strongbox.agent.stdio import open_stdio
from strongbox.protocol import E_CONTAINER, E_EXISTS, E_INVALID_PARAMS, E_STATE, verbs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from strongbox.agent.server import Context
    from strongbox.container.launcher import Launched


@handler(verbs.EXEC_PROCESS)
def exec_process(ctx: Context, params: dict[str, Any]) -> Any:
    """Start an OCI ``process`` in the running container; answer once execve succeeded or failed.

    Same stdio as ``create_container`` (``terminal`` comes from the process)
    and same failures as ``start_container``: set-up errors and exec errors
    are ``container_error`` with ``{"exit_code": 127/126/1}``.
    """
    from strongbox.container.launcher import exec_in

    process = params["process"]
    terminal = bool(process.get("terminal"))

    def start(container: table.GuestContainer, stdio: tuple[int, int, int],
              cgroup: str | None) -> Launched:
        return exec_in(container.init_pid(), process, container.spec, stdio=stdio,
                       terminal=terminal, cgroup=cgroup)

    return _start_process(ctx, params, terminal, table.console_size(process), start)


@handler(verbs.FILE_TRANSFER)
def file_transfer(ctx: Context, params: dict[str, Any]) -> Any:
    """Start one file operation in the container's root (agent/files.py), carried like an
    exec: answered once it runs; its end, errno for exit code, by ``wait_process``."""
    from strongbox.agent import files

    def start(container: table.GuestContainer, stdio: tuple[int, int, int],
              cgroup: str | None) -> Launched:
        return files.launch(container.init_pid(), cgroup, params["op"], params["path"],
                            params.get("mode", 0o644), stdio)

    return _start_process(ctx, params, False, None, start)


def _start_process(ctx: Context, params: dict[str, Any], terminal: bool,
                   size: tuple[int, int] | None,
                   start: Callable[[table.GuestContainer, tuple[int, int, int], str | None],
                                   Launched]) -> Any:
    """The exec id checked, the stdio opened, ``start`` launched and watched like an exec."""
    from strongbox.container.errors import ContainerError

    container = table.lookup(params)
    exec_id = params["exec_id"]
    if not exec_id:
        raise RequestError(E_INVALID_PARAMS, "exec_id must not be empty (it names the init)")
    container.require(sm.EXEC)
    if exec_id in container.execs:
        raise RequestError(E_EXISTS, f"process {exec_id!r} of {container.id!r} already exists")
    stdio = dict(params["stdio"], terminal=terminal)
    cgroup = container.cgroup.path if container.cgroup is not None else None
    ours: dict[str, int] = {}
    to_close: list[int] = []
    try:
        ptmx = f"/proc/{container.init_pid()}/root/dev/ptmx"
        child_stdio, ours, to_close = open_stdio(stdio, size,
                                                 ptmx if os.path.exists(ptmx) else None)
        launched = start(container, child_stdio, cgroup)
    except (ContainerError, OSError, ValueError, TypeError) as exc:
        for fd in ours.values():
            os.close(fd)
        raise RequestError(E_CONTAINER, f"exec in container {container.id!r}: {exc}",
                           {"exit_code": 1}) from None
    finally:
        for fd in to_close:
            os.close(fd)
    proc = table.GuestProcess(container.id, exec_id, launched)
    container.execs[exec_id] = proc
    proc.attach_stdio(ctx.server, stdio, ours)
    ctx.server.reaper.watch(proc.pid, proc.exited)
    proc.start(ctx.server, ctx.defer())
    return None


@handler(verbs.WAIT_PROCESS)
def wait_process(ctx: Context, params: dict[str, Any]) -> Any:
    """The process's exit status, at once if it has exited, else when it does."""
    proc = table.lookup_process(params)
    if proc.status is not None:
        return table.exit_info(proc.status)
    proc.waiters.append(ctx.defer())
    return None


@handler(verbs.SIGNAL_PROCESS)
def signal_process(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Send a signal to one process, or with ``all`` to every process of the container."""
    container = table.lookup(params)
    sig = params["signal"]
    if params.get("all") and container.cgroup is not None:
        for pid in container.cgroup.procs():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return {}
    proc = table.lookup_process(params)
    if proc.status is not None:
        name = f"signal process {proc.exec_id} of" if proc.exec_id else "kill"
        raise RequestError(E_STATE, f"cannot {name} container {container.id}: it is stopped, "
                           "not running", {"status": sm.STOPPED, "required": [sm.RUNNING]})
    os.kill(proc.pid, sig)
    return {}


@handler(verbs.RESIZE_PTY)
def resize_pty(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    table.lookup_process(params).resize(params["rows"], params["cols"])
    return {}


@handler(verbs.LIST_PROCESSES)
def list_processes(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Every process in the container's cgroup, as ``ps`` would describe it (guest pids)."""
    from strongbox.container.errors import ContainerError

    container = table.lookup(params)
    pids: list[int] = []
    if container.cgroup is not None:
        try:
            pids = container.cgroup.procs()
        except ContainerError as exc:
            raise RequestError(E_CONTAINER, f"processes of {container.id!r}: {exc}") from None
    return procfs.list_processes(pids)


@handler(verbs.DEBUG_CONSOLE)
def debug_console(ctx: Context, params: dict[str, Any]) -> Any:
    """Start the debug shell (agent/debugshell.py); answer with its pid once it runs."""
    from strongbox.agent import debugshell

    stdio = dict(params["stdio"], terminal=True)
    try:
        child_stdio, ours, to_close = open_stdio(stdio, (params["rows"], params["cols"]))
        try:
            launched = debugshell.launch(child_stdio[0])
        finally:
            for fd in to_close:
                os.close(fd)
    except OSError as exc:
        raise RequestError(E_CONTAINER, f"debug console: {exc}", {"exit_code": 1}) from None
    proc = table.GuestProcess("", f"debug-{launched.pid}", launched)
    proc.attach_stdio(ctx.server, stdio, ours)

    def exited(status: int) -> None:
        proc.exited(status)
        proc.release(ctx.server)

    ctx.server.reaper.watch(proc.pid, exited)
    proc.start(ctx.server, ctx.defer())
    return None
