"""Launcher starts container processes for the agent: ``launch`` a new container, ``exec_in`` one.

Both fork a process that sets itself up (:mod:`init`), reports ``ready``
and waits at a start barrier; the caller gets a :class:`Launched` once the
process is completely set up, so every create-time error is raised by the
call itself as :class:`ContainerError`, with nothing left running.

Processes and reaping: the container process is always a *direct child* of
the caller. For a new (or joined) pid namespace the caller itself enters
the namespace for the duration of its fork() (unshare/setns on
CLONE_NEWPID only affect children) and leaves it right after, so the child
is born PID 1 of its namespace, or a member of the container's. A new
pid namespace that a new user namespace must own cannot be entered that
way: the forked process unshares both, the caller writes its id maps, and
it forks the namespace's PID 1 and exits (reaped here), so that PID 1 is
reparented to the agent, the guest's init. Either way, after ``launch()``
returns, ``pid`` is the only child to reap, with waitpid like any other.
On failure the child is killed and reaped before the error is raised (a
concurrent waitpid(-1) reaper in the caller may win that race; that is
tolerated).

File descriptors: the caller keeps ownership of the ``stdio`` fds (close
them after launch/exec_in returns); ``Launched.error_fd`` and the start
pipe are the caller's to close with :meth:`Launched.close`.
"""

from __future__ import annotations

import errno
import os

from strongbox.container import init, namespaces
from strongbox.container.capabilities import read_last_cap
from strongbox.container.errors import ContainerError
from strongbox.container.plan import ContainerPlan, ProcessPlan
from strongbox.container.sync import MAPPED, START, ChildEnd, wait_ready
from strongbox.container.sync import read_exec_result as read_exec_result
from strongbox.container.userns import UserNamespace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

_SIGKILL = 9


class LaunchRequest:
    """What the agent asks for: a spec, a prepared rootfs, stdio fds, an optional cgroup.

    ``mount_sources`` maps an index into ``spec["mounts"]`` to the path a bind
    mount must use instead of its spec ``source`` (where the agent shared
    that host path into the guest). ``cgroup`` is a cgroup v2 directory the
    caller created; the process joins it before anything else.
    """

    __slots__ = ("cgroup", "container_id", "mount_sources", "rootfs", "spec", "stdio",
                 "terminal")

    def __init__(self, *, container_id: str, spec: dict[str, Any], rootfs: str,
                 stdio: tuple[int, int, int], mount_sources: dict[int, str] | None = None,
                 terminal: bool = False, cgroup: str | None = None) -> None:
        self.container_id = container_id
        self.spec = spec
        self.rootfs = rootfs
        self.mount_sources = mount_sources or {}
        self.stdio = stdio
        self.terminal = terminal
        self.cgroup = cgroup


class Launched:
    """A set-up process waiting at its start barrier.

    ``start()`` lets it exec. ``error_fd`` then reports the exec result: EOF
    without data when execve succeeded, otherwise one line of error text
    (see :func:`read_exec_result`). ``close()`` before ``start()`` makes the
    process exit without running anything.
    """

    __slots__ = ("_start_fd", "error_fd", "notes", "pid")

    def __init__(self, pid: int, error_fd: int, start_fd: int,
                 notes: list[str] | None = None) -> None:
        self.pid = pid
        self.error_fd = error_fd
        self._start_fd = start_fd
        #: What the caller should know, e.g. init.NO_PIVOT (worth a warning: a chroot is weaker).
        self.notes = notes or []

    def start(self) -> None:
        if self._start_fd < 0:
            raise ContainerError("start", f"process {self.pid} was already started or closed")
        fd, self._start_fd = self._start_fd, -1
        try:
            os.write(fd, START)
        except OSError as exc:
            raise ContainerError.from_os("start", f"start process {self.pid}", exc) from exc
        finally:
            os.close(fd)

    def close(self) -> None:
        """Close the caller's ends of the pipes (idempotent)."""
        for name in ("_start_fd", "error_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)

    def __repr__(self) -> str:
        return f"Launched(pid={self.pid})"


def launch(req: LaunchRequest) -> Launched:
    """Create a container from ``req`` and return it waiting at the start barrier."""
    last_cap = read_last_cap()
    plan = ContainerPlan(req.spec, last_cap)
    root = os.path.realpath(req.rootfs)
    if not os.path.isdir(root):
        raise ContainerError("rootfs", f"rootfs {req.rootfs}: not a directory", errno.ENOTDIR)
    join_fd = None
    ns = plan.namespaces
    if "pid" in ns.join:
        join_fd = namespaces.open_ns(ns.join["pid"], "pid")
    pid_ns = None
    if join_fd is not None or (ns.has("pid") and plan.userns is None):
        pid_ns = namespaces.PidNamespaceForFork(join_fd)

    def run(child: ChildEnd) -> NoReturn:
        init.container_main(plan, root, req.mount_sources, req.stdio, req.terminal,
                            req.cgroup, child, last_cap, req.container_id)

    try:
        return _spawn(run, pid_ns, plan.userns)
    finally:
        if join_fd is not None:
            os.close(join_fd)


def exec_in(init_pid: int, process: dict[str, Any], spec: dict[str, Any], *,
            stdio: tuple[int, int, int], terminal: bool = False,
            cgroup: str | None = None) -> Launched:
    """Start ``process`` inside the running container whose init is ``init_pid`` (runc exec).

    Joins the init's namespaces that differ from the caller's, its root
    directory and the cgroup, applies ``process`` and the container's
    ``linux.seccomp``; same barrier and result as :func:`launch`.
    """
    last_cap = read_last_cap()
    plan = ProcessPlan(process, spec, last_cap)
    linux = spec.get("linux") or {}
    kinds = {str(n.get("type")) for n in linux.get("namespaces") or []}
    userns = UserNamespace.from_spec(linux, "user" in kinds)
    host_ids = None if userns is None else userns.host_ids(plan.uid, plan.gid)
    opened: list[int] = []
    try:
        ns_fds = []
        pid_ns = None
        try:
            for kind in ("user", *namespaces.JOIN_ORDER):
                name = namespaces.TYPES[kind][1]
                if not namespaces.same_namespace(init_pid, name):
                    fd = namespaces.open_ns(f"/proc/{init_pid}/ns/{name}", kind)
                    opened.append(fd)
                    ns_fds.append((kind, fd))
            if not namespaces.same_namespace(init_pid, "pid"):
                fd = namespaces.open_ns(f"/proc/{init_pid}/ns/pid", "pid")
                opened.append(fd)
                pid_ns = namespaces.PidNamespaceForFork(fd)
            root_fd = os.open(f"/proc/{init_pid}/root",
                              os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            opened.append(root_fd)
        except OSError as exc:
            raise ContainerError.from_os("exec", f"container process {init_pid}", exc) from exc

        def run(child: ChildEnd) -> NoReturn:
            init.exec_main(plan, ns_fds, root_fd, stdio, terminal, cgroup, child, last_cap,
                           host_ids)

        return _spawn(run, pid_ns)
    finally:
        for fd in opened:
            os.close(fd)


def _spawn(run: Callable[[ChildEnd], NoReturn],
           pid_ns: namespaces.PidNamespaceForFork | None,
           userns: UserNamespace | None = None) -> Launched:
    """Fork ``run`` (in ``pid_ns`` if given) and wait until it is ready or has failed.

    With ``userns`` the child asks for its maps (written here) and may hand
    over to the pid namespace's PID 1 (see :func:`init._enter_user_namespace`).
    """
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    start_r, start_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = _fork(pid_ns)
    except BaseException:
        for fd in (report_r, report_w, start_r, start_w):
            os.close(fd)
        raise
    if pid == 0:  # the child: never returns
        try:
            run(ChildEnd(report_w, start_r))
        finally:
            os._exit(1)
    os.close(report_w)
    os.close(start_r)
    launched = Launched(pid, report_r, start_w)

    def event(fields: list[str]) -> None:
        if fields[0] == "userns" and userns is not None and launched.pid == pid:
            userns.write(pid)
            os.write(start_w, MAPPED)
        elif fields[0] == "pid" and len(fields) == 2 and fields[1].isdigit():
            reap(pid)  # it exits right after saying so
            launched.pid = int(fields[1])
        else:
            raise ContainerError("start", f"unexpected {fields[0]!r} from the container process")

    try:
        launched.notes = wait_ready(report_r, event if userns is not None else None)
    except BaseException:
        launched.close()
        kill_and_reap(launched.pid)
        if launched.pid != pid:
            reap(pid)
        raise
    return launched


def _fork(pid_ns: namespaces.PidNamespaceForFork | None) -> int:
    if pid_ns is not None:
        pid_ns.enter()
    try:
        pid = os.fork()
    except OSError as exc:
        if pid_ns is not None:
            pid_ns.leave()
        raise ContainerError.from_os("start", "fork", exc) from exc
    if pid != 0 and pid_ns is not None:
        try:
            pid_ns.leave()
        except OSError as exc:  # the caller would fork into the container from now on
            kill_and_reap(pid)
            raise ContainerError.from_os("namespace", "leave pid namespace", exc) from exc
    return pid


def kill_and_reap(pid: int) -> None:
    """SIGKILL ``pid`` and collect it; fine if the caller's reaper got there first."""
    try:
        os.kill(pid, _SIGKILL)
    except ProcessLookupError:
        pass
    reap(pid)


def reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
