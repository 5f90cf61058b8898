"""Debugshell: the debug console's shell, busybox ``sh`` in the agent's own namespaces.

``strongbox debug console`` (with ``[agent] debug_console = true`` on the host)
asks for a shell outside every container: the guest's own root, pid, mount and
network namespaces, where ``ps`` shows the agent as PID 1 and every container's
processes. It runs on a pseudo-terminal whose master the agent pumps over the
same multiplexed streams as an exec's, and it is started the way a container's
process is (a start barrier, then an error pipe that is empty when ``execve``
worked), so :class:`.containers.GuestProcess` carries it. It is nobody's
container: the reaper's exit callback holds it until it exits.
"""

from __future__ import annotations

import fcntl
import os
import termios

from strongbox.container.launcher import Launched
from strongbox.container.sync import START

SHELL = "/bin/sh"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TERM": "xterm", "HOME": "/",
       "PS1": "strongbox-debug# "}


def launch(slave: int) -> Launched:
    """Fork the shell on the pty ``slave``, waiting at its start barrier."""
    start_r, start_w = os.pipe2(os.O_CLOEXEC)
    error_r, error_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.close(start_w)
            os.close(error_r)
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            if os.read(start_r, 1) != START:
                os._exit(0)  # closed before start: run nothing
            os.execve(SHELL, [SHELL], ENV)
        except OSError as exc:
            os.write(error_w, f"{SHELL}: {exc.strerror}\n".encode())
        os._exit(127)
    os.close(start_r)
    os.close(error_w)
    return Launched(pid, error_r, start_w)
