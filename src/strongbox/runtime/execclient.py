"""Execclient is the caller's side of ``exec``: hand our stdio to the monitor, wait for the exit.

The process runs in the guest; the monitor relays its stdio to the fds we
pass (SCM_RIGHTS) and tells us its exit status on the same connection. We
forward the signals we receive, and terminal resizes, the other way. With
``--detach`` a child process does all this in the background (a descendant
of the caller, so a subreaper can wait for it) and exits like the process.

The monitor may go away at any moment (a racing ``delete --force``): every
OSError on the connection, at any step, is :class:`MonitorGone`, one line
naming the container.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

from strongbox.errors import ContainerStartError, StrongboxError
from strongbox.runtime import control, daemon, tty
from strongbox.runtime import state as st
from strongbox.runtime.console import make_controlling, send_console
from strongbox.runtime.monitor import FORWARDED
from strongbox.sandbox.sandbox import ExitStatus


def exec_process(store: st.StateStore, container_id: str, process: dict[str, Any], *,
                 detach: bool, pid_file: str | None, console_socket: str | None) -> int:
    """Run ``process`` in the container; the exit code the command exits with."""
    socket_path = store.socket_path(container_id)
    terminal = bool(process.get("terminal"))
    if not detach:
        status = _session(socket_path, process, terminal=terminal,
                          console_socket=console_socket, notify=None)
        return status.code

    async def main(notify: Any, inherited: tuple[int, int, int]) -> ExitStatus:
        if not (terminal and console_socket):
            for target, fd in enumerate(inherited):  # the process's stdio: put it back
                os.dup2(fd, target)
        # With a console socket the process's stdio is the pty: the caller's stdio
        # (go-runc's output pipe, read to EOF before `docker exec -it` may go on)
        # must not stay open in this background session.
        for fd in inherited:
            os.close(fd)
        return _session(socket_path, process, terminal=terminal,
                        console_socket=console_socket, notify=notify)

    daemon.spawn(main, pid_file=pid_file)
    return 0


class MonitorGone(StrongboxError):
    """The container's monitor went away during an exec (usually: a forced delete)."""


class _Link:
    """The exec's connection to the monitor; losing it, at any step, is :class:`MonitorGone`."""

    def __init__(self, socket_path: Path) -> None:
        self.container_id = socket_path.parent.name
        try:
            self.conn = control.connect(socket_path, timeout=120.0)
        except control.MonitorUnreachable as exc:
            raise MonitorGone(f"container {self.container_id}: {exc} (deleted?)") from exc

    def wait_forever(self) -> None:
        """From here on the session lasts as long as the process: no read times out.

        The connect timeout guards reaching the monitor and its answer to the
        exec; a process may then run for days, quietly.
        """
        self.conn.sock.settimeout(None)

    def gone(self) -> MonitorGone:
        return MonitorGone(f"container {self.container_id}: its monitor went away (deleted?)")

    def send(self, message: dict[str, Any], fds: tuple[int, ...] = ()) -> None:
        try:
            self.conn.send(message, fds)
        except OSError as exc:
            raise self.gone() from exc

    def send_quietly(self, message: dict[str, Any]) -> None:
        """For signal handlers: a monitor gone is noticed by the next :meth:`recv`."""
        with contextlib.suppress(OSError):
            self.conn.send(message)

    def recv(self) -> dict[str, Any]:
        try:
            message, extra = self.conn.recv()
        except OSError as exc:
            raise self.gone() from exc
        for fd in extra:
            os.close(fd)
        if message is None:
            raise self.gone()
        return message

    def close(self) -> None:
        self.conn.close()


def _release_stdio() -> None:
    """A detached session lets go of the caller's stdio once the monitor holds it.

    As with runc, only the process keeps its stdio open: a caller waiting for
    EOF on a pipe it gave (its output ends when the process's does) must not
    also wait for this session, which outlives the process by a moment.
    """
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _session(socket_path: Path, process: dict[str, Any], *, terminal: bool,
             console_socket: str | None, notify: Any) -> ExitStatus:
    with contextlib.ExitStack() as stack:
        if terminal and console_socket:
            slave = send_console(console_socket)
            with contextlib.suppress(OSError):
                make_controlling(slave)  # only possible as a session leader (detached)
            fds: tuple[int, int, int] = (slave, slave, slave)
            resize_fd = slave
        else:
            fds = (0, 1, 2)
            resize_fd = 0
            if terminal and tty.is_terminal(0):
                size = tty.window_size(0)
                if size:
                    process["consoleSize"] = {"height": size[0], "width": size[1]}
                stack.enter_context(tty.raw_mode(0))
        conn = _Link(socket_path)
        stack.callback(conn.close)
        exec_id = secrets.token_hex(8)
        conn.send({"op": "exec", "process": process, "exec_id": exec_id}, fds)
        reply = conn.recv()
        if not reply.get("ok"):
            code = reply.get("exit_code")
            raise ContainerStartError(str(reply.get("error")),
                                      code if isinstance(code, int) else 1)
        conn.wait_forever()
        if notify is not None:
            _release_stdio()
            notify("ok")

        def forward(signum: int, _frame: Any) -> None:
            conn.send_quietly({"op": "signal", "signal": signum})

        def resize(_signum: int, _frame: Any) -> None:
            if size := tty.window_size(resize_fd):
                conn.send_quietly({"op": "resize", "rows": size[0], "cols": size[1]})

        for signum in FORWARDED:
            previous = signal.signal(signum, forward)
            stack.callback(signal.signal, signum, previous)
        if terminal:
            previous = signal.signal(signal.SIGWINCH, resize)
            stack.callback(signal.signal, signal.SIGWINCH, previous)
            # The caller (conmon) may have sized the pty before this handler existed:
            # its SIGWINCH is lost, so pass on the size it has now, from the first byte.
            resize(signal.SIGWINCH, None)
        while True:
            message = conn.recv()
            if "exit" in message:
                result = message["exit"]
                if result.get("error"):
                    sys.stderr.write(f"strongbox: error: {result['error']}\n")
                return ExitStatus(int(result["code"]), result.get("signal"))
