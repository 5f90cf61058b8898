"""Container requests: create, start, status, pause, resume, update, stats, remove.

The names match the verbs of the host's sandbox library (``create_container``
there sends ``create_container`` here), so grepping a verb walks the whole
feature. Requests about one process of a container (exec, wait, signal,
resize, ps) are in :mod:`.processes`. The container library is imported on
first use, not at boot.

Nothing here may hold the loop: freezing a cgroup and killing a container's
processes take the kernel a while, so those answers are deferred and a
``call_later`` timer polls until the kernel is done.
"""

from __future__ import annotations

import errno
import os
import time

from strongbox import status as sm
from strongbox.agent import containers as table
from strongbox.agent import disks, share
from strongbox.agent.registry import handler
from strongbox.agent.server import RequestError
from strongbox.agent.stdio import open_stdio
from strongbox.protocol import E_CONTAINER, E_EXISTS, E_INVALID_PARAMS, E_STATE, verbs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from strongbox.agent.server import Context

#: How often a deferred answer re-checks the kernel, and for how long at most.
POLL_INTERVAL = 0.01  # seconds
FREEZE_TIMEOUT = 5.0
KILL_TIMEOUT = 5.0
_SIGKILL = 9


@handler(verbs.CREATE_CONTAINER)
def create_container(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Build the container up to its start barrier: create-time errors surface here."""
    from strongbox.container.errors import ContainerError
    from strongbox.container.launcher import LaunchRequest, launch

    cid = params["id"]
    if cid in table.CONTAINERS:
        raise RequestError(E_EXISTS, f"container {cid!r} already exists")
    spec = params["spec"]
    stdio = params["stdio"]
    cgroup = None
    to_close: list[int] = []
    ours: dict[str, int] = {}
    try:
        cgroup = table.cgroup_for(cid, (spec.get("linux") or {}).get("resources") or {})
        rootfs = table.rootfs_for(cid, params["rootfs"])
        sources = {int(k): share.shared_path(v) for k, v in params["mounts"].items()}
        sources.update(disks.mount_volumes(cid, params.get("disks") or {}))
        child_stdio, ours, to_close = open_stdio(stdio,
                                                 table.console_size(spec.get("process") or {}))
        launched = launch(LaunchRequest(
            container_id=cid, spec=spec, rootfs=rootfs, mount_sources=sources,
            stdio=child_stdio, terminal=bool(stdio.get("terminal")), cgroup=cgroup.path,
        ))
    except (ContainerError, OSError, ValueError) as exc:
        for fd in list(ours.values()):
            os.close(fd)
        table.release_resources(cid, cgroup)
        raise RequestError(E_CONTAINER, str(exc)) from None
    finally:
        for fd in to_close:
            os.close(fd)
    container = table.GuestContainer(cid, spec, cgroup)
    proc = table.GuestProcess(cid, "", launched)
    container.init = proc
    table.CONTAINERS[cid] = container
    proc.attach_stdio(ctx.server, stdio, ours)
    ctx.server.reaper.watch(proc.pid, proc.exited)
    return {"pid": proc.pid}


@handler(verbs.START_CONTAINER)
def start_container(ctx: Context, params: dict[str, Any]) -> Any:
    """Release the barrier; answer once exec has succeeded or failed."""
    container = table.lookup(params)
    container.require(sm.START)
    assert container.init is not None
    container.init.start(ctx.server, ctx.defer())
    return None


@handler(verbs.CONTAINER_STATUS)
def container_status(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """{"status", "pid" (the init's guest pid), "exit_code" (once stopped, else None)}."""
    container = table.lookup(params)
    init = container.init
    exit_code = None
    if init is not None and init.status is not None:
        exit_code = table.exit_info(init.status)["exit_code"]
    return {"status": container.status, "pid": init.pid if init else None,
            "exit_code": exit_code}


@handler(verbs.PAUSE_CONTAINER)
def pause_container(ctx: Context, params: dict[str, Any]) -> Any:
    """Freeze every process of the container; answer once the kernel says frozen."""
    container = table.lookup(params)
    container.require(sm.PAUSE)
    container.paused = True
    _set_frozen(ctx, container, True)
    return None


@handler(verbs.RESUME_CONTAINER)
def resume_container(ctx: Context, params: dict[str, Any]) -> Any:
    container = table.lookup(params)
    container.require(sm.RESUME)
    container.paused = False
    _set_frozen(ctx, container, False)
    return None


def _set_frozen(ctx: Context, container: table.GuestContainer, frozen: bool) -> None:
    """Write cgroup.freeze, then poll from the loop until cgroup.events agrees.

    ``Cgroup.freeze``/``thaw`` with a zero timeout write the file (a no-op
    when it already holds the value) and check the state once, so PID 1
    never sleeps waiting for the kernel. A pause and a resume racing each
    other: the later one wins, the earlier one's answer says so.
    """
    from strongbox.container.errors import ContainerError

    cgroup = container.cgroup
    assert cgroup is not None
    container.freezer_generation += 1
    generation = container.freezer_generation
    deferred = ctx.defer()
    deadline = time.monotonic() + FREEZE_TIMEOUT
    verb = "pause" if frozen else "resume"

    def attempt() -> None:
        if container.freezer_generation != generation:
            deferred.reject(E_STATE, f"cannot {verb} container {container.id}: overtaken "
                            "by a later pause or resume",
                            {"status": container.status, "required": []})
            return
        try:
            if frozen:
                cgroup.freeze(timeout=0)
            else:
                cgroup.thaw(timeout=0)
        except ContainerError as exc:
            if exc.errno == errno.ETIMEDOUT and time.monotonic() < deadline:
                ctx.server.call_later(POLL_INTERVAL, attempt)
                return
            if frozen:  # do not leave it half frozen
                container.paused = False
                try:
                    cgroup.thaw(timeout=0)
                except ContainerError:
                    pass
            reason = f"timed out after {FREEZE_TIMEOUT:g}s" if exc.errno == errno.ETIMEDOUT \
                else str(exc)
            deferred.reject(E_CONTAINER, f"{verb} container {container.id!r}: {reason}")
            return
        deferred.resolve({"status": container.status})

    attempt()


@handler(verbs.UPDATE_CONTAINER)
def update_container(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Apply OCI ``linux.resources`` to the live cgroup; merge them into the stored spec."""
    from strongbox.container.errors import ContainerError

    container = table.lookup(params)
    container.require(sm.UPDATE)
    resources = params["resources"]
    assert container.cgroup is not None
    try:
        container.cgroup.apply(resources)
    except ContainerError as exc:
        raise RequestError(E_CONTAINER, f"update container {container.id!r}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise RequestError(E_INVALID_PARAMS, f"resources: {exc}") from None
    linux = container.spec.setdefault("linux", {})
    stored = linux.get("resources") or {}
    for key, value in resources.items():
        old = stored.get(key)
        stored[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) \
            else value
    linux["resources"] = stored
    return {"resources": stored}


@handler(verbs.STATS_CONTAINER)
def stats_container(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Cgroup counters ({"memory", "pids", "cpu"}), plus "status" and "procs" (guest pids)."""
    from strongbox.container.errors import ContainerError

    container = table.lookup(params)
    cgroup = container.cgroup
    assert cgroup is not None
    try:
        stats = cgroup.stats()
        procs = cgroup.procs()
    except ContainerError as exc:
        raise RequestError(E_CONTAINER, f"stats of container {container.id!r}: {exc}") from None
    stats.setdefault("pids", {"current": len(procs), "max": None})
    stats["procs"] = procs
    stats["status"] = container.status
    return stats


@handler(verbs.REMOVE_CONTAINER)
def remove_container(ctx: Context, params: dict[str, Any]) -> Any:
    """Kill whatever still runs (in any status), then release cgroup, rootfs and pumps.

    Answered once every process is gone, which takes the kernel a moment:
    a timer polls meanwhile. Each process's ``wait_process`` is answered
    with its real exit status (137 for the killed ones) before the answer.
    """
    container = table.lookup(params)
    if container.removing is not None:  # already under way: answer with the first one
        container.removing.append(ctx.defer())
        return None
    container.removing = [ctx.defer()]
    deadline = time.monotonic() + KILL_TIMEOUT
    server = ctx.server

    def finish() -> None:
        alive = [p.pid for p in container.processes() if p.status is None]
        left = _kill(container)
        if alive or left:
            if time.monotonic() < deadline:
                server.call_later(POLL_INTERVAL, finish)
                return
            waiters, container.removing = container.removing or [], None
            for waiter in waiters:
                waiter.reject(E_CONTAINER, f"remove container {container.id!r}: processes "
                              f"{sorted(set(alive + left))} survive SIGKILL")
            return
        for proc in container.processes():
            proc.release(server)
        table.release_resources(container.id, container.cgroup)
        table.CONTAINERS.pop(container.id, None)
        waiters, container.removing = container.removing or [], None
        for waiter in waiters:
            waiter.resolve({})

    finish()
    return None


def _kill(container: table.GuestContainer) -> list[int]:
    """SIGKILL every process of the container; returns the pids still in its cgroup."""
    from strongbox.container.errors import ContainerError

    for proc in container.processes():
        if proc.status is None:
            try:
                os.kill(proc.pid, _SIGKILL)
            except ProcessLookupError:
                pass
    if container.cgroup is None:
        return []
    try:
        left = container.cgroup.procs()
        if left:
            container.cgroup.kill()
    except ContainerError:
        return []  # the cgroup is gone or unreadable: nothing more to wait for there
    return left
