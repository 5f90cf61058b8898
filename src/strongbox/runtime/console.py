"""Console: the host-side pseudo-terminal of a container with ``terminal: true``.

runc's contract: the runtime creates the pty, sends the *master* over the
unix socket named by ``--console-socket`` (SCM_RIGHTS, with the slave's
name as the message), and the caller (conmon, containerd's shim) owns the
master from then on. The real terminal of the process is in the guest; the
monitor relays between the host slave and the guest pty, and learns about
resizes through SIGWINCH, which the kernel sends because the slave is the
monitor's controlling terminal.
"""

from __future__ import annotations

import fcntl
import os
import socket
import termios
import tty

from strongbox.errors import ConfigError


def send_console(socket_path: str) -> int:
    """Create a pty, send its master to ``socket_path``; return the slave fd."""
    master, slave = os.openpty()
    try:
        tty.setraw(slave, termios.TCSANOW)  # the guest's pty does the line discipline
        name = os.ttyname(slave)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(socket_path)
            socket.send_fds(sock, [name.encode()], [master])
        except OSError as exc:
            os.close(slave)
            raise ConfigError(f"--console-socket {socket_path}: {exc.strerror or exc}") \
                from exc
        finally:
            sock.close()
    finally:
        os.close(master)
    return slave


def make_controlling(fd: int) -> None:
    """Adopt the terminal on ``fd`` (after setsid) so that resizes raise SIGWINCH."""
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
