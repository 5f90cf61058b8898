"""Init is the code the forked container process runs, from fork() to execve().

Two entry points, one shape: :func:`container_main` builds a new container
(``launch``), :func:`exec_main` enters a running one (``exec_in``). Both

1. make the process a clean slate: default signal dispositions and an
   empty mask (the caller's Python handlers must never run here), a new
   session, stdio on 0/1/2, every other inherited fd closed;
2. join the cgroup while the caller's paths still mean what it meant
   (before any namespace changes);
3. set up (namespaces and rootfs, or setns into the container's);
4. report ``ready`` and wait at the start barrier;
5. become the workload (:func:`process.become`).

Any failure is reported on the sync pipe (before the barrier: launch()
raises it; after: the exec result) and the process exits with
``os._exit``: it is a fork of the caller and must never return into the
caller's code or flush the caller's buffers.
"""

from __future__ import annotations

import _signal
import fcntl
import os

from strongbox.container import _syscalls as sc
from strongbox.container import namespaces, process, rlimits, rootfs
from strongbox.container.errors import ContainerError
from strongbox.container.sync import ChildEnd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

    from strongbox.container.plan import ContainerPlan, ProcessPlan

_SIGKILL = 9
_SIGSTOP = 19

#: The note ``Launched.notes`` carries when the root is a chroot, not a pivot_root.
NO_PIVOT = "pivot_root refused (EINVAL): root set up with MS_MOVE + chroot"


def reset_signals() -> None:
    """Default dispositions and an empty mask, as a freshly exec'd program expects.

    The caller's Python handlers must never run in this copy of it, and an
    ignored signal (Python ignores SIGPIPE) would stay ignored across execve.
    """
    for signum in range(1, _signal.NSIG):
        if signum in (_SIGKILL, _SIGSTOP):
            continue
        try:
            _signal.signal(signum, _signal.SIG_DFL)
        except (OSError, ValueError, RuntimeError):
            pass  # signals glibc reserves for itself
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def setup_fds(stdio: tuple[int, int, int], keep: list[int]) -> list[int]:
    """stdio onto 0, 1, 2; ``keep`` onto 3, 4, ... (close-on-exec); close everything else.

    Everything is first copied above every fd involved, so that no dup2()
    overwrites a descriptor that is still to be moved.
    """
    high = max(10, *stdio, *keep) + 1
    stdio_copies = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, high) for fd in stdio]
    keep_copies = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, high) for fd in keep]
    for target, fd in enumerate(stdio_copies):
        os.dup2(fd, target, inheritable=True)
    for target, fd in enumerate(keep_copies, start=3):
        os.dup2(fd, target, inheritable=False)
    os.closerange(3 + len(keep), 2**31 - 1)
    return list(range(3, 3 + len(keep)))


def _begin(stdio: tuple[int, int, int], terminal: bool, cgroup: str | None,
           child: ChildEnd, extra: list[int]) -> list[int]:
    """Steps 1 and 2; returns the new numbers of the ``extra`` fds."""
    reset_signals()
    try:
        os.setsid()
        fds = setup_fds(stdio, [child.report_fd, child.start_fd, *extra])
    except OSError as exc:
        raise ContainerError.from_os("stdio", "set up stdio", exc) from exc
    child.report_fd, child.start_fd = fds[0], fds[1]
    if terminal:
        try:
            sc.set_controlling_tty(0)
        except OSError as exc:
            raise ContainerError.from_os("terminal", "set controlling terminal", exc) from exc
    if cgroup:
        try:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write("0")
        except OSError as exc:
            raise ContainerError.from_os("cgroup", f"join cgroup {cgroup}", exc) from exc
    return fds[2:]


def apply_limits(plan: ProcessPlan) -> None:
    """oom_score_adj and rlimits: lowering the one or raising a hard limit needs the
    initial user namespace's privileges, so a user namespace is entered after this."""
    if plan.oom_score_adj is not None:
        write_proc("/proc/self/oom_score_adj", str(plan.oom_score_adj), "oom_score_adj")
    rlimits.apply(plan.rlimits)


def apply_process_settings(plan: ProcessPlan, limits: bool = True) -> None:
    """oom_score_adj, rlimits (unless applied already) and umask: still root, before the
    barrier."""
    if limits:
        apply_limits(plan)
    os.umask(plan.umask)


def write_proc(path: str, value: str, stage: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise ContainerError.from_os(stage, f"write {path}", exc) from exc


def apply_system_settings(plan: ContainerPlan) -> None:
    """hostname, domainname and sysctls: what only a container's own namespaces may set."""
    try:
        if plan.hostname:
            sc.sethostname(plan.hostname)
        if plan.domainname:
            sc.setdomainname(plan.domainname)
    except OSError as exc:
        raise ContainerError.from_os("hostname", "set hostname", exc) from exc
    for key, value in plan.sysctl.items():
        write_proc("/proc/sys/" + key.replace(".", "/"), value, "sysctl")


def _run(child: ChildEnd, setup: Callable[[], list[str]], plan: ProcessPlan,
         last_cap: int, before_exec: Callable[[], None] | None = None) -> NoReturn:
    """Steps 3-5 around ``setup``; never returns, whatever is raised."""
    status = 1
    try:
        status = _steps(child, setup, plan, last_cap, before_exec)
    finally:
        os._exit(status)


def _steps(child: ChildEnd, setup: Callable[[], list[str]], plan: ProcessPlan,
           last_cap: int, before_exec: Callable[[], None] | None) -> int:
    """Set up, wait at the barrier, become the workload; returns the exit status on failure."""
    try:
        notes = setup()
    except ContainerError as err:
        child.setup_failed(err)
        return 1
    except Exception as exc:
        child.setup_failed(ContainerError("init", f"{type(exc).__name__}: {exc}"))
        return 1
    if not child.ready_and_wait(notes):
        return 1
    try:
        process.become(plan, last_cap, before_exec)
    except ContainerError as err:
        child.exec_failed(err)
        return process.exit_code(err)
    except Exception as exc:
        child.exec_failed(ContainerError("init", f"{type(exc).__name__}: {exc}"))
    return 1


def container_main(plan: ContainerPlan, root: str, mount_sources: dict[int, str],
                   stdio: tuple[int, int, int], terminal: bool, cgroup: str | None,
                   child: ChildEnd, last_cap: int, container_id: str = "") -> NoReturn:
    """The new container's init: namespaces, rootfs, settings, then the workload."""

    def setup() -> list[str]:
        _begin(stdio, terminal, cgroup, child, [])
        if plan.userns is None:
            namespaces.enter(plan.namespaces)
        else:
            _enter_user_namespace(plan, child)
        rootfs.prepare(plan, root, mount_sources, terminal)
        notes = [] if rootfs.pivot(root) else [NO_PIVOT]
        apply_system_settings(plan)  # sysctls first: /proc/sys becomes read-only next
        rootfs.finalize(plan)
        apply_process_settings(plan.process, limits=plan.userns is None)
        return notes

    def start_hooks() -> None:
        plan.start_hooks.run(container_id)

    _run(child, setup, plan.process, last_cap, start_hooks)


def _enter_user_namespace(plan: ContainerPlan, child: ChildEnd) -> None:
    """Namespaces with a new user namespace owning the others; returns in the container's init.

    What needs the initial namespace's privileges is done first. With a new
    pid namespace this process (unshared into it, but not in it) forks the
    namespace's PID 1, reports its pid and exits; the child waits for that
    exit (EOF on a pipe only the parent held) so the ``pid`` line comes
    before anything it says, and is then a child of the agent (the guest's
    PID 1), like every container process.
    """
    assert plan.userns is not None
    apply_limits(plan.process)
    process.chown_stdio(*plan.userns.host_ids(plan.process.uid, plan.process.gid))
    namespaces.enter(plan.namespaces, child.request_mapping)
    if "pid" not in plan.namespaces.new:
        return
    gate_r, gate_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except OSError as exc:
        raise ContainerError.from_os("namespace", "fork into the pid namespace", exc) from exc
    if pid != 0:
        child.report_pid(pid)
        os._exit(0)
    os.close(gate_w)
    while True:
        try:
            os.read(gate_r, 1)
            break
        except InterruptedError:
            continue
    os.close(gate_r)


def exec_main(plan: ProcessPlan, ns_fds: list[tuple[str, int]], root_fd: int,
              stdio: tuple[int, int, int], terminal: bool, cgroup: str | None,
              child: ChildEnd, last_cap: int,
              host_ids: tuple[int, int] | None = None) -> NoReturn:
    """An extra process in a running container: join its namespaces and root, then exec.

    ``ns_fds`` lists a user namespace first; ``host_ids`` are then the ids
    the process's user maps to, for its stdio.
    """

    def setup() -> list[str]:
        fds = _begin(stdio, terminal, cgroup, child, [fd for _, fd in ns_fds] + [root_fd])
        apply_limits(plan)  # before a user namespace, as for the init
        if host_ids is not None:
            process.chown_stdio(*host_ids)
        for (kind, _), fd in zip(ns_fds, fds, strict=False):
            namespaces.join(fd, kind)
        try:
            os.fchdir(fds[-1])
            os.chroot(".")
            os.chdir("/")
        except OSError as exc:
            raise ContainerError.from_os("rootfs", "enter the container's root", exc) from exc
        for fd in fds:
            os.close(fd)
        apply_process_settings(plan, limits=False)
        return []

    _run(child, setup, plan, last_cap)
