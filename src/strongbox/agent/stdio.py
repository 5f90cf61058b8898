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
from strongbox.protocol import MAX_DATA_CHUNK, StreamData, StreamEof, StreamReset, StreamWritable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from strongbox.agent.server import Server

#: One read of a process's output is one DATA frame: under emulation every turn
#: of the loop costs more than moving the bytes, so each takes a whole frame.
_CHUNK = MAX_DATA_CHUNK
#: Stop reading a process's output while this much is queued but not yet sent.
_HIGH_WATER = 256 * 1024
#: Size of the process's stdio pipes (Linux gives 64 KiB): a writer that
#: writes little at a time (busybox ``head`` writes 4 KiB) then fills a frame
#: before the agent has to wake, so the agent reads whole frames, not scraps.
PIPE_SIZE = 1024 * 1024
#: After a read that took less than half a frame, wait this long before the
#: next one (seconds). A process writing in small pieces (busybox ``head``:
#: 4 KiB) would otherwise wake the agent for every piece, and each turn of the
#: agent's loop, emulated, costs more than the piece: the pump would spend the
#: VM's one CPU on frame headers. The first output of a quiet process is read
#: at once; only what follows it within the pause waits, by at most the pause.
_COALESCE = 0.005
#: At most this many queued chunks go to one writev() of a process's stdin.
_IOV_MAX = 64


def _set_nonblocking(fd: int) -> None:
    os.set_blocking(fd, False)


def _grow_pipe(fd: int) -> None:
    """Best effort: a pipe keeps working at its default size if the kernel refuses."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass


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
        _grow_pipe(r)
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
        self._waiting = False  # a coalescing pause is under way
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
            self._coalesce(len(data))
        else:
            self.finish()

    def _coalesce(self, taken: int) -> None:
        if taken < _CHUNK // 2:
            self._pause()
            self._waiting = True
            self.server.call_later(_COALESCE, self._after_pause)

    def _after_pause(self) -> None:
        """Read at once (the pipe has most likely filled meanwhile), unwatched: no poll
        and no epoll registration for a read that pauses again; watch otherwise."""
        self._waiting = False
        if self.finished or self._reading:
            return
        self._on_ready(EPOLLIN)
        if not self._waiting:
            self._resume()

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
        #: Received chunks not yet written, in order; _pending[0] is written up to _offset.
        self._pending: list[bytes] = []
        self._offset = 0
        self._eof = False
        self.closed = False
        _set_nonblocking(fd)
        server.mux.open(stream_id, readable=True, writable=False)
        server.stream_sinks[stream_id] = self._on_stream

    def _on_stream(self, event: object) -> None:
        if isinstance(event, StreamData):
            self._pending.append(event.data)
            self._flush()
        elif isinstance(event, StreamEof | StreamReset):
            self._eof = True
            self._flush()

    def _flush(self, _mask: int = 0) -> None:
        if self.closed:
            return
        written = 0
        pending = self._pending
        while pending:
            offset = self._offset
            iov = [memoryview(pending[0])[offset:] if offset else pending[0],
                   *pending[1:_IOV_MAX]]
            try:
                n = os.writev(self.fd, iov)
            except BlockingIOError:
                break
            except OSError:  # the process closed its stdin: drop what it will never read
                written += sum(len(chunk) for chunk in pending) - offset
                pending.clear()
                self._offset = 0
                break
            written += n
            n += offset
            done = 0
            for chunk in pending:
                if n < len(chunk):
                    break
                n -= len(chunk)
                done += 1
            del pending[:done]
            self._offset = n
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
