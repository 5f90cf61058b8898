"""Containers is the agent's table of containers and their processes.

A container here is an init process built by :mod:`strongbox.container`
from an OCI spec, its cgroup, its root filesystem and its stdio pumps.
Additional processes (exec) join it later. Exit statuses are recorded when
the reaper reports them, and every ``wait_process`` request waiting on a
process is answered then; a finished process stays in the table (and
answers ``wait_process``) until its container is removed.

Status, as the host sees it (``container_status``), follows the one model
of :mod:`strongbox.status`: created -> running <-> paused -> stopped once the
init exited. A request made in the wrong status fails with ``E_STATE``
(the server turns the model's ``ContainerStateError`` into it), naming the
status the container is in and the ones the request needs.
"""

from __future__ import annotations

import os

from strongbox import status as sm
from strongbox.agent import disks, share
from strongbox.agent.server import EPOLLIN, RequestError
from strongbox.agent.stdio import InputPump, OutputPump, set_window_size
from strongbox.protocol import E_CONTAINER, E_NOT_FOUND, E_STATE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from strongbox.agent.server import Deferred, Server
    from strongbox.container.cgroups import Cgroup
    from strongbox.container.launcher import Launched

CGROUP_PARENT = "/sys/fs/cgroup/strongbox"

#: Every container of this guest by id.
CONTAINERS: dict[str, GuestContainer] = {}


def exit_info(status: int) -> dict[str, Any]:
    """A wait status as the host wants it: runc's convention 128+N for signals."""
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return {"exit_code": 128 - code, "signal": -code}
    return {"exit_code": code, "signal": None}


def exec_exit_code(message: str) -> int:
    """What runc-compatible runtimes exit with when the process cannot start."""
    lowered = message.lower()
    if "not found" in lowered or "no such file" in lowered:
        return 127
    if "permission denied" in lowered:
        return 126
    return 1


class GuestProcess:
    """One process of a container (its init or an exec) and its stdio."""

    def __init__(self, container_id: str, exec_id: str, launched: Launched) -> None:
        self.container_id = container_id
        self.exec_id = exec_id
        self.launched = launched
        self.pid = launched.pid
        self.outputs: list[OutputPump] = []
        self.input: InputPump | None = None
        self.pty_master: int | None = None
        self.status: int | None = None
        self.waiters: list[Deferred] = []
        self.started = False
        #: The start_container/exec_process answer, until the exec result is known.
        self.starting: Deferred | None = None
        #: Why execve failed (the line from the error pipe), if it did.
        self.exec_error: str | None = None

    def attach_stdio(self, server: Server, stdio: dict[str, Any], fds: dict[str, int]) -> None:
        """Connect the agent's ends of the stdio (from ``open_stdio``) to the host's streams."""
        if stdio.get("terminal"):
            master = fds["master"]
            self.pty_master = os.dup(master)  # kept for resizes; pumps own their fds
            os.set_inheritable(self.pty_master, False)
            if stdio.get("stdout"):
                self.outputs.append(OutputPump(server, master, stdio["stdout"]))
            else:
                os.close(master)
            if stdio.get("stdin"):
                self.input = InputPump(server, os.dup(self.pty_master), stdio["stdin"],
                                       close_on_eof=False)
            return
        if "stdin" in fds:
            self.input = InputPump(server, fds["stdin"], stdio["stdin"])
        for name in ("stdout", "stderr"):
            if name in fds:
                self.outputs.append(OutputPump(server, fds[name], stdio[name]))

    def start(self, server: Server, deferred: Deferred) -> None:
        """Release the start barrier; answer ``deferred`` once execve succeeded or failed.

        The exec result arrives on the launcher's error pipe: EOF alone when
        execve succeeded, one line of error text otherwise. It is read from
        the loop, so a slow exec never blocks the agent.
        """
        from strongbox.container.errors import ContainerError

        self.started = True
        self.starting = deferred
        fd = self.launched.error_fd
        chunks: list[bytes] = []

        def on_error_pipe(_mask: int) -> None:
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if data:
                chunks.append(data)
                return
            self._exec_result(server, b"".join(chunks).decode(errors="replace").strip())

        os.set_blocking(fd, False)
        server.watch(fd, EPOLLIN, on_error_pipe)
        try:
            self.launched.start()
        except ContainerError as exc:
            self._exec_result(server, str(exc))

    def _exec_result(self, server: Server, message: str) -> None:
        server.unwatch(self.launched.error_fd)
        self.launched.close()
        if not message:
            deferred, self.starting = self.starting, None
            if deferred is not None:
                deferred.resolve({"pid": self.pid})
            return
        self.exec_error = message.splitlines()[0]
        if self.status is not None:
            self._answer_exec_error()
        # else: the failed process is exiting; exited() answers with its status.

    def _answer_exec_error(self) -> None:
        """Reject the start with the process's own exit status (init's 127/126/1)."""
        deferred, self.starting = self.starting, None
        if deferred is None or self.exec_error is None or self.status is None:
            return
        code = os.waitstatus_to_exitcode(self.status)
        if code <= 0:  # killed (or oddly 0): judge by the message as runc would
            code = exec_exit_code(self.exec_error)
        deferred.reject(E_CONTAINER, self.exec_error, {"exit_code": code})

    def exited(self, status: int) -> None:
        self.status = status
        if self.exec_error is not None:
            self._answer_exec_error()
        for pump in self.outputs:
            pump.drain()
        if self.input is not None:
            self.input.close()
        if self.pty_master is not None:
            os.close(self.pty_master)
            self.pty_master = None
        for waiter in self.waiters:
            waiter.resolve(exit_info(status))
        self.waiters.clear()

    def release(self, server: Server) -> None:
        """Let go of everything the agent holds for this (exited) process."""
        if self.launched.error_fd >= 0:
            self._exec_result(server, "the container was removed before the process started")
        for pump in self.outputs:
            pump.finish()
            server.stream_sinks.pop(pump.stream_id, None)
        if self.input is not None:
            self.input.close()
            server.stream_sinks.pop(self.input.stream_id, None)

    def resize(self, rows: int, cols: int) -> None:
        if self.pty_master is None:
            raise OSError(25, "process has no terminal")  # ENOTTY
        set_window_size(self.pty_master, rows, cols)


class GuestContainer:
    """A container in this guest."""

    def __init__(self, container_id: str, spec: dict[str, Any], cgroup: Cgroup | None) -> None:
        self.id = container_id
        self.spec = spec
        self.cgroup = cgroup
        self.init: GuestProcess | None = None
        self.execs: dict[str, GuestProcess] = {}
        self.paused = False
        #: Bumped by every pause and resume, so a stale freezer poll knows to stop.
        self.freezer_generation = 0
        #: Not None while remove_container is killing the processes: who wants to know.
        self.removing: list[Deferred] | None = None

    @property
    def status(self) -> sm.ContainerStatus:
        if self.init is None or self.init.status is not None:
            return sm.STOPPED
        if not self.init.started:
            return sm.CREATED
        return sm.PAUSED if self.paused else sm.RUNNING

    def require(self, verb: str) -> None:
        """Refuse a request unless the container's status allows ``verb`` (the one table)."""
        if self.removing is not None:
            raise RequestError(E_STATE, f"cannot {verb} container {self.id}: it is being "
                               "removed", {"status": self.status, "required": []})
        sm.require(self.status, verb, self.id)

    def process(self, exec_id: str = "") -> GuestProcess | None:
        if not exec_id:
            return self.init
        return self.execs.get(exec_id)

    def processes(self) -> list[GuestProcess]:
        return ([self.init] if self.init is not None else []) + list(self.execs.values())

    def init_pid(self) -> int:
        assert self.init is not None
        return self.init.pid


def lookup(params: dict[str, Any]) -> GuestContainer:
    """The container ``params["id"]`` names, or a not-found error."""
    container = CONTAINERS.get(params["id"])
    if container is None:
        raise RequestError(E_NOT_FOUND, f"container {params['id']!r} does not exist")
    return container


def lookup_process(params: dict[str, Any]) -> GuestProcess:
    """The process ``params["exec_id"]`` names (the init when empty or absent)."""
    container = lookup(params)
    exec_id = params.get("exec_id") or ""
    proc = container.process(exec_id)
    if proc is None:
        raise RequestError(E_NOT_FOUND, f"process {exec_id!r} of {container.id!r} does not exist")
    return proc


def console_size(process: dict[str, Any]) -> tuple[int, int] | None:
    size = process.get("consoleSize")
    return (int(size["height"]), int(size["width"])) if size else None


def cgroup_for(container_id: str, resources: dict[str, Any]) -> Cgroup:
    from strongbox.container.cgroups import Cgroup

    cgroup = Cgroup(f"{CGROUP_PARENT}/{container_id}")
    cgroup.create()
    cgroup.apply(resources)
    return cgroup


def rootfs_for(container_id: str, rootfs: dict[str, Any]) -> str:
    disk = rootfs.get("disk")
    if disk is not None:  # the host gave its block device: mounted here, not shared
        source = disks.mount_disk(container_id, disk)
    else:
        share.ensure_share()
        source = share.shared_path(rootfs["path"])
    return share.prepare_rootfs(container_id, source, bool(rootfs.get("overlay")))


def release_resources(container_id: str, cgroup: Cgroup | None) -> None:
    """Remove a container's cgroup and root filesystem (its processes are gone)."""
    if cgroup is not None:
        try:
            cgroup.destroy()
        except Exception:
            pass
    share.release_rootfs(container_id)
    disks.release_disk(container_id)
