"""Stdio pumps move a process's bytes between local fds and protocol streams.

Flow control is end to end: an output pump stops reading its pipe while the
stream's credit window is exhausted (so a host that stops reading stops the
process at its next write, as a full pipe would), and an input pump returns
credit to the host only after the bytes are written into the process's
stdin. Both run on the agent's single epoll loop.
"""

from __future__ import annotations

import errno
import os

from strongbox.agent.server import EPOLLIN, EPOLLOUT
from strongbox.protocol import StreamData, StreamEof, StreamReset, StreamWritable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from strongbox.agent.server import Server

_CHUNK = 64 * 1024
#: Stop reading a process's output while this much is queued but not yet sent.
_HIGH_WATER = 256 * 1024


def _set_nonblocking(fd: int) -> None:
    os.set_blocking(fd, False)


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
