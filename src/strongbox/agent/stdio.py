"""Stdio pumps move a process's bytes between local fds and protocol streams.

:func:`open_stdio` makes the fds a new process gets (pipes, or a pty) and
the agent's ends of them; the pumps then move the agent's ends' bytes.

Flow control is end to end: an output pump stops reading its pipe while the
stream's credit window is exhausted (so a host that stops reading stops the
process at its next write, as a full pipe would), and an input pump returns
credit to the host only after the bytes are written into the process's
stdin. Both run on the agent's single epoll loop.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import termios

from strongbox.agent.server import EPOLLIN, EPOLLOUT
from strongbox.protocol import StreamData, StreamEof, StreamReset, StreamWritable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from strongbox.agent.server import Server

_CHUNK = 64 * 1024
#: Stop reading a process's output while this much is queued but not yet sent.
_HIGH_WATER = 256 * 1024


def _set_nonblocking(fd: int) -> None:
    os.set_blocking(fd, False)


def set_window_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


_TIOCSPTLCK = 0x40045431
_TIOCGPTPEER = 0x5441


def _open_pty(ptmx: str | None) -> tuple[int, int]:
    """A pty pair; from ``ptmx`` (a container's devpts) when given.

    A process exec'd into a container must get its terminal from the
    container's own devpts instance, or the slave's /dev/pts/N would name
    nothing (or another terminal) inside the container; TIOCGPTPEER opens the
    slave without a path lookup in our namespace.
    """
    if ptmx is None:
        return os.openpty()
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    except OSError:
        os.close(master)
        raise
    return master, int(slave)


def open_stdio(stdio: dict[str, Any], console_size: tuple[int, int] | None,
               ptmx: str | None = None
               ) -> tuple[tuple[int, int, int], dict[str, int], list[int]]:
    """Create the fds for a new process from the host's ``stdio`` request.

    Returns (the child's 0/1/2, the agent's ends by name: ``master`` for a
    terminal, else ``stdin``/``stdout``/``stderr`` where the host asked for
    them, and fds to close in the agent once the child has them).
    """
    if stdio.get("terminal"):
        master, slave = _open_pty(ptmx)
        os.set_inheritable(master, False)
        if console_size:
            set_window_size(slave, console_size[0], console_size[1])
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


class OutputPump:
    """Process output fd (pipe or pty master) -> host stream, then EOF."""

    def __init__(self, server: Server, fd: int, stream_id: int, *, close_fd: bool = True,
                 on_eof: Callable[[], None] | None = None) -> None:
        self.server = server
        self.fd = fd
        self.stream_id = stream_id
        self.close_fd = close_fd
        self.on_eof = on_eof
        self.finished = False
        self._reading = False
        _set_nonblocking(fd)
        server.mux.open(stream_id, readable=False, writable=True)
        server.stream_sinks[stream_id] = self._on_stream
        self._resume()

    def _resume(self) -> None:
        if not self.finished and not self._reading:
            self.server.watch(self.fd, EPOLLIN, self._on_ready)
            self._reading = True

    def _pause(self) -> None:
        if self._reading:
            self.server.unwatch(self.fd)
            self._reading = False

    def _on_stream(self, event: object) -> None:
        if isinstance(event, StreamWritable):
            self._resume()
        elif isinstance(event, StreamReset):  # the host no longer wants this output
            self.finish(send_eof=False)

    def _on_ready(self, _mask: int) -> None:
        mux = self.server.mux
        if mux.send_window(self.stream_id) <= 0 or mux.queued(self.stream_id) >= _HIGH_WATER:
            self._pause()
            return
        try:
            data = os.read(self.fd, _CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: a pty whose last slave closed
                self.server.log(f"agent: reading output: {exc}")
            data = b""
        if data:
            mux.write(self.stream_id, data)
        else:
            self.finish()

    def finish(self, send_eof: bool = True) -> None:
        """The process side is done: flush EOF and release the fd."""
        if self.finished:
            return
        self.finished = True
        self._pause()
        if self.close_fd:
            os.close(self.fd)
        if send_eof and self.stream_id in self.server.mux.streams():
            self.server.mux.close_write(self.stream_id)
        if self.on_eof is not None:
            self.on_eof()

    def drain(self) -> None:
        """Read whatever is still buffered (the writer exited), then finish."""
        if self.finished:
            return
        while True:
            try:
                data = os.read(self.fd, _CHUNK)
            except (BlockingIOError, OSError):
                break
            if not data:
                break
            self.server.mux.write(self.stream_id, data)
        self.finish()


class InputPump:
    """Host stream -> process input fd (pipe or pty master)."""

    def __init__(self, server: Server, fd: int, stream_id: int, *,
                 close_on_eof: bool = True) -> None:
        self.server = server
        self.fd = fd
        self.stream_id = stream_id
        self.close_on_eof = close_on_eof
        self._pending = bytearray()
        self._eof = False
        self.closed = False
        _set_nonblocking(fd)
        server.mux.open(stream_id, readable=True, writable=False)
        server.stream_sinks[stream_id] = self._on_stream

    def _on_stream(self, event: object) -> None:
        if isinstance(event, StreamData):
            self._pending += event.data
            self._flush()
        elif isinstance(event, StreamEof | StreamReset):
            self._eof = True
            self._flush()

    def _flush(self, _mask: int = 0) -> None:
        if self.closed:
            return
        written = 0
        while self._pending:
            try:
                n = os.write(self.fd, self._pending[:_CHUNK])
            except BlockingIOError:
                break
            except OSError:  # the process closed its stdin: drop what it will never read
                written += len(self._pending)
                self._pending.clear()
                break
            del self._pending[:n]
            written += n
        if written:
            self.server.mux.consumed(self.stream_id, written)
        if self._pending:
            self.server.watch(self.fd, EPOLLOUT, self._flush)
            return
        self.server.unwatch(self.fd)
        if self._eof and self.close_on_eof:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.server.unwatch(self.fd)
            os.close(self.fd)
