"""Session is one process in a sandbox as the SDK sees it: pipes in, output out, an exit.

It speaks the monitor's ``exec`` protocol (:mod:`strongbox.runtime.control`): three pipe
ends go over the control socket as the process's stdio, the monitor answers with the
exec id, and the same connection later carries the exit status one way and signals the
other. One selector loop moves everything: stdin is fed from bytes or a file object as
the pipe drains, stdout and stderr are collected (and handed to callbacks as they come)
until the process has exited and both pipes are at end of file, so no output after the
exit is lost and no thread per pipe is needed. A file operation is the same session
with op ``file`` (:mod:`strongbox.agent.files` on the guest's side).

A timeout kills the process (SIGKILL through the connection), keeps draining for a
moment so what it printed is not lost, and raises :class:`SandboxTimeout` carrying that
output. Losing the monitor at any step is :class:`SandboxNotFound`.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from strongbox.errors import ContainerStartError, SandboxError, SandboxNotFound, SandboxTimeout
from strongbox.runtime import control

Output = Callable[[bytes], None]
Input = bytes | IO[bytes] | None
_CHUNK = 1 << 16
#: How long the output of a killed process is still read before giving up on it.
_DRAIN_AFTER_KILL_S = 5.0
_CONNECT_S = 30.0


@dataclass(frozen=True)
class RunResult:
    """How a process ended and what it printed."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    signal: int | None = None

    @property
    def text(self) -> str:
        """stdout as text (UTF-8, undecodable bytes replaced)."""
        return self.stdout.decode(errors="replace")


class Session:
    """One process (or file operation) of a sandbox, from its start to its exit."""

    def __init__(self, socket_path: Path, request: dict[str, Any], *, stdin: Input = None,
                 on_stdout: Output | None = None, on_stderr: Output | None = None,
                 keep_output: bool = True, stdout_to: IO[bytes] | None = None) -> None:
        self.sandbox_id = socket_path.parent.name
        self._on = {1: on_stdout, 2: on_stderr}
        self._keep = keep_output
        self._to = stdout_to
        self._out: dict[int, list[bytes]] = {1: [], 2: []}
        self._input = stdin
        self._pending = memoryview(b"")
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.status: tuple[int, int | None] | None = None
        self.error: BaseException | None = None
        try:
            self.conn = control.connect(socket_path, timeout=_CONNECT_S)
        except control.MonitorUnreachable as exc:
            raise SandboxNotFound(f"sandbox {self.sandbox_id} is not running ({exc})") from exc
        pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(3)]
        theirs = [pipes[0][0], pipes[1][1], pipes[2][1]]
        self._stdin_w, self._outputs = pipes[0][1], {pipes[1][0]: 1, pipes[2][0]: 2}
        try:
            self.conn.send(request, theirs)
            answer, extra = self.conn.recv()
            for fd in extra:
                os.close(fd)
        except OSError as exc:
            self._close_all()
            raise SandboxNotFound(f"sandbox {self.sandbox_id}: lost its monitor ({exc})") \
                from exc
        finally:
            for fd in theirs:
                os.close(fd)
        if answer is None or not answer.get("ok"):
            self._close_all()
            raise _refusal(self.sandbox_id, answer)
        self.exec_id = str(answer.get("exec_id"))
        self.conn.sock.settimeout(None)

    # --- the loop -------------------------------------------------------------------------
    def pump(self, deadline: float | None = None) -> bool:
        """Move data until the process ended and its output is read (True) or ``deadline``
        (a monotonic time) passed (False). Only one thread pumps a session."""
        with self._lock:
            return self._pump(deadline)

    def _pump(self, deadline: float | None) -> bool:
        if self._done.is_set():
            return True
        with selectors.DefaultSelector() as sel:
            for fd in self._outputs:
                sel.register(fd, selectors.EVENT_READ)
            sel.register(self.conn.sock, selectors.EVENT_READ)
            self._start_input(sel)
            while self._outputs or self.status is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                for key, _ in sel.select(left):
                    # by what the fd is now: an event of this batch may be for a pipe an
                    # earlier one closed (the exit closes stdin)
                    if key.fileobj is self.conn.sock:
                        self._on_connection(sel)
                    elif key.fd in self._outputs:
                        self._read(sel, key.fd)
                    elif key.fd == self._stdin_w:
                        self._feed(sel)
        self._finish()
        return True

    def _start_input(self, sel: selectors.BaseSelector) -> None:
        if self._stdin_w >= 0:
            os.set_blocking(self._stdin_w, False)
            sel.register(self._stdin_w, selectors.EVENT_WRITE)

    def _feed(self, sel: selectors.BaseSelector) -> None:
        """Write what is pending of stdin, refilled from the source; EOF closes the pipe."""
        data = self._pending
        if not data:
            source = self._input
            if isinstance(source, bytes | bytearray | memoryview):
                data, self._input = memoryview(source), None
            elif source is not None:
                data = memoryview(source.read(_CHUNK * 4) or b"")
                if not data:
                    self._input = None
        if not data:
            self._close_stdin(sel)
            return
        try:
            written = os.write(self._stdin_w, data[:_CHUNK * 4])
        except BlockingIOError:
            written = 0
        except BrokenPipeError:  # the process stopped reading: the rest is not wanted
            self._input, written = None, len(data)
        self._pending = data[written:]

    def _close_stdin(self, sel: selectors.BaseSelector) -> None:
        if self._stdin_w >= 0:
            sel.unregister(self._stdin_w)
            os.close(self._stdin_w)
            self._stdin_w = -1

    def _read(self, sel: selectors.BaseSelector, fd: int) -> None:
        data = os.read(fd, _CHUNK)
        which = self._outputs[fd]
        if not data:
            sel.unregister(fd)
            os.close(fd)
            del self._outputs[fd]
            return
        if which == 1 and self._to is not None:
            self._to.write(data)
        elif self._keep:
            self._out[which].append(data)
        if (callback := self._on[which]) is not None:
            callback(data)

    def _on_connection(self, sel: selectors.BaseSelector) -> None:
        try:
            message, extra = self.conn.recv()
        except OSError:
            message, extra = None, []
        for fd in extra:
            os.close(fd)
        if message is not None and "exit" not in message:
            return
        sel.unregister(self.conn.sock)
        exit_info = (message or {}).get("exit") or {}
        if message is None:
            self.error = SandboxNotFound(f"sandbox {self.sandbox_id}: its monitor went away "
                                         "while the process ran")
        elif exit_info.get("error"):
            self.error = SandboxError(f"sandbox {self.sandbox_id}: {exit_info['error']}")
        self.status = (int(exit_info.get("code", 137)), exit_info.get("signal"))
        self._close_stdin(sel)

    def _finish(self) -> None:
        self._close_all()
        self._done.set()

    def _close_all(self) -> None:
        for fd in [*self._outputs, self._stdin_w]:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._outputs, self._stdin_w = {}, -1
        with contextlib.suppress(OSError):
            self.conn.close()

    # --- what callers use -------------------------------------------------------------------
    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process (nothing if it has ended)."""
        if not self._done.is_set():
            with contextlib.suppress(OSError):
                self.conn.send({"op": "signal", "signal": int(signum)})

    def result(self, timeout_s: float | None = None, what: str = "the process") -> RunResult:
        """Wait for the end (killing the process after ``timeout_s``) and return it."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        if not self.pump(deadline):
            self.signal(signal.SIGKILL)
            self.pump(time.monotonic() + _DRAIN_AFTER_KILL_S)
            if not self._done.is_set():
                self._finish()
            raise SandboxTimeout(f"{what} did not end within {timeout_s:g}s and was killed",
                                 float(timeout_s or 0), *self.output())
        if self.error is not None:
            raise self.error
        assert self.status is not None
        return RunResult(self.status[0], *self.output(), signal=self.status[1])

    def output(self) -> tuple[bytes, bytes]:
        return b"".join(self._out[1]), b"".join(self._out[2])

    @property
    def done(self) -> bool:
        return self._done.is_set()


def _refusal(sandbox_id: str, answer: dict[str, Any] | None) -> SandboxError:
    if answer is None:
        return SandboxNotFound(f"sandbox {sandbox_id}: its monitor closed the connection")
    message = f"sandbox {sandbox_id}: {answer.get('error', 'refused')}"
    if answer.get("kind") == "ContainerStartError":
        return ContainerStartError(message, int(answer.get("exit_code") or 1))
    if answer.get("kind") == "ContainerStateError":
        return SandboxNotFound(message)
    return SandboxError(message)
