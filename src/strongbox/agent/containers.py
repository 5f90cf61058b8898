"""Containers is the agent's table of containers and their processes.

A container here is an init process built by :mod:`strongbox.container`
from an OCI spec, its cgroup, its root filesystem and its stdio pumps.
Additional processes (exec) join it later. Exit statuses are recorded when
the reaper reports them, and every ``wait_process`` request waiting on a
process is answered then.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios

from strongbox.agent import share
from strongbox.agent.stdio import InputPump, OutputPump

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from strongbox.agent.server import Deferred, Server
    from strongbox.container.cgroups import Cgroup
    from strongbox.container.launcher import Launched

CGROUP_PARENT = "/sys/fs/cgroup/strongbox"
CREATED, RUNNING, STOPPED = "created", "running", "stopped"


def exit_info(status: int) -> dict[str, Any]:
    """A wait status as the host wants it: runc's convention 128+N for signals."""
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return {"exit_code": 128 - code, "signal": -code}
    return {"exit_code": code, "signal": None}


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

    def exited(self, status: int) -> None:
        self.status = status
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

    def resize(self, rows: int, cols: int) -> None:
        if self.pty_master is None:
            raise OSError(25, "process has no terminal")  # ENOTTY
        fcntl.ioctl(self.pty_master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class GuestContainer:
    """A container in this guest."""

    def __init__(self, container_id: str, spec: dict[str, Any], cgroup: Cgroup | None) -> None:
        self.id = container_id
        self.spec = spec
        self.cgroup = cgroup
        self.init: GuestProcess | None = None
        self.execs: dict[str, GuestProcess] = {}

    @property
    def status(self) -> str:
        if self.init is None or self.init.status is not None:
            return STOPPED
        return RUNNING if self.init.started else CREATED

    def process(self, exec_id: str = "") -> GuestProcess | None:
        if not exec_id:
            return self.init
        return self.execs.get(exec_id)


def attach_stdio(server: Server, proc: GuestProcess, stdio: dict[str, Any],
                 fds: dict[str, int]) -> None:
    """Connect the agent's ends of a process's stdio to the host's streams."""
    if stdio.get("terminal"):
        master = fds["master"]
        proc.pty_master = os.dup(master)  # kept for resizes; pumps own their fds
        if stdio.get("stdout"):
            proc.outputs.append(OutputPump(server, master, stdio["stdout"]))
        else:
            os.close(master)
        if stdio.get("stdin"):
            proc.input = InputPump(server, os.dup(proc.pty_master), stdio["stdin"],
                                   close_on_eof=False)
        return
    if "stdin" in fds:
        proc.input = InputPump(server, fds["stdin"], stdio["stdin"])
    for name in ("stdout", "stderr"):
        if name in fds:
            proc.outputs.append(OutputPump(server, fds[name], stdio[name]))


def open_stdio(stdio: dict[str, Any], console_size: tuple[int, int] | None
               ) -> tuple[tuple[int, int, int], dict[str, int], list[int]]:
    """Create the fds for a new process.

    Returns (the child's 0/1/2, the agent's ends by name, fds to close in the
    agent once the child has them).
    """
    if stdio.get("terminal"):
        master, slave = os.openpty()
        os.set_inheritable(master, False)
        if console_size:
            fcntl.ioctl(slave, termios.TIOCSWINSZ,
                        struct.pack("HHHH", console_size[0], console_size[1], 0, 0))
        return (slave, slave, slave), {"master": master}, [slave]
    ours: dict[str, int] = {}
    child: list[int] = []
    to_close: list[int] = []
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    to_close.append(null)
    for name in ("stdin", "stdout", "stderr"):
        if not stdio.get(name):
            child.append(null)
            continue
        r, w = os.pipe2(os.O_CLOEXEC)
        if name == "stdin":
            child.append(r)
            ours[name] = w
            to_close.append(r)
        else:
            child.append(w)
            ours[name] = r
            to_close.append(w)
    return (child[0], child[1], child[2]), ours, to_close


def cgroup_for(container_id: str, resources: dict[str, Any]) -> Cgroup:
    from strongbox.container.cgroups import Cgroup

    cgroup = Cgroup(f"{CGROUP_PARENT}/{container_id}")
    cgroup.create()
    cgroup.apply(resources)
    return cgroup


def rootfs_for(container_id: str, rootfs: dict[str, Any]) -> str:
    share.ensure_share()
    source = share.shared_path(rootfs["path"])
    return share.prepare_rootfs(container_id, source, bool(rootfs.get("overlay")))
