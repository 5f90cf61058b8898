"""Fifo_io connects a process's stdio streams to the paths containerd gives a task.

containerd (and ``ctr``) hand stdio over as paths: FIFOs it created and
opened on its side, or ``file://`` URIs for log files. Output FIFOs are
opened O_RDWR (never blocks: we are a reader and a writer at once); the
stdin FIFO is opened for reading only, so the writer closing it is the end
of input, as containerd's own shims see it; CloseIO ends it too. Bytes are
pumped between them and the guest's streams on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from typing import Any
from urllib.parse import urlparse

from strongbox.errors import SandboxError
from strongbox.sandbox.agent_client import AgentStream
from strongbox.sandbox.sandbox import ProcessIO

_CHUNK = 64 * 1024


def _open_output(uri: str) -> int:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "fifo"):
        return os.open(parsed.path if parsed.scheme else uri,
                       os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    if parsed.scheme == "file":
        os.makedirs(os.path.dirname(parsed.path), exist_ok=True)
        return os.open(parsed.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                       0o640)
    raise SandboxError(f"stdio {uri}: the {parsed.scheme}:// scheme is not supported "
                       "(use a FIFO or file:// path)")


def _resolve(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)


def _deliver(future: asyncio.Future[int], fd: int) -> None:
    if future.done():
        os.close(fd)  # nobody waits any more
    else:
        future.set_result(fd)


def _fail(future: asyncio.Future[int], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class FifoIO:
    """The stdio of one task or exec process."""

    def __init__(self, io: ProcessIO, stdin: str, stdout: str, stderr: str) -> None:
        self.io = io
        self.paths = (stdin, stdout, stderr)
        self._fds: list[int] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stdin_pumped = False
        self._stdin_closed = False
        self._closing = asyncio.Event()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        stdin, stdout, stderr = self.paths
        for stream, path in ((self.io.stdout, stdout), (self.io.stderr, stderr)):
            if stream is not None and path:
                fd = _open_output(path)
                self._fds.append(fd)
                self._tasks.append(loop.create_task(self._pump_out(stream, fd)))
            elif stream is not None:
                self._tasks.append(loop.create_task(self._discard(stream)))
        if stdin and self.io.stdin is not None:
            self._stdin_pumped = True
            self._tasks.append(loop.create_task(self._pump_in(self.io.stdin, stdin)))
        elif self.io.stdin is not None:
            self.io.stdin.close_write()

    async def _pump_out(self, stream: AgentStream, fd: int) -> None:
        loop = asyncio.get_running_loop()
        while data := await stream.read():
            view = memoryview(data)
            while view:
                try:
                    n = os.write(fd, view)
                    view = view[n:]
                except BlockingIOError:
                    ready = loop.create_future()
                    loop.add_writer(fd, ready.set_result, None)
                    try:
                        await ready
                    finally:
                        loop.remove_writer(fd)
                except OSError:
                    view = view[len(view):]  # the reader went away: drop, keep draining

    async def _discard(self, stream: AgentStream) -> None:
        while await stream.read():
            pass

    async def _pump_in(self, stream: AgentStream, path: str) -> None:
        """Forward input until the writer closes the FIFO (or CloseIO), then EOF.

        The FIFO is opened for reading only, so that the writer closing it is
        an end of file we can see. That open blocks until a writer appears,
        so it happens in a daemon thread (the writer may never come).
        """
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[int] = loop.create_future()

        def open_blocking() -> None:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                loop.call_soon_threadsafe(_fail, opened, exc)
                return
            loop.call_soon_threadsafe(_deliver, opened, fd)

        threading.Thread(target=open_blocking, name="stdin-fifo", daemon=True).start()
        closing: asyncio.Future[Any] = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({opened, closing}, return_when=asyncio.FIRST_COMPLETED)
            if not opened.done() or opened.exception() is not None:
                return
            fd = opened.result()
            self._fds.append(fd)
            os.set_blocking(fd, False)
            while True:
                readable: asyncio.Future[Any] = loop.create_future()
                loop.add_reader(fd, _resolve, readable)
                try:
                    await asyncio.wait({readable, closing},
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    loop.remove_reader(fd)
                eof = False
                while True:  # drain what is there now
                    try:
                        data = os.read(fd, _CHUNK)
                    except BlockingIOError:
                        break
                    except OSError:
                        eof = True
                        break
                    if not data:
                        eof = True
                        break
                    stream.write(data)
                    await stream.drain()
                if eof or closing.done():
                    break
        finally:
            closing.cancel()
            with contextlib.suppress(Exception):
                stream.close_write()

    def close_stdin(self) -> None:
        """containerd's CloseIO: the caller will send no more input."""
        if self._stdin_closed:
            return
        self._stdin_closed = True
        if not self._stdin_pumped and self.io.stdin is not None:
            with contextlib.suppress(Exception):
                self.io.stdin.close_write()
        self._closing.set()

    async def finish(self, grace: float) -> None:
        """After the process exited: flush what is left, then release the FIFOs."""
        self.close_stdin()
        outputs = [t for t in self._tasks if not t.done()]
        if outputs:
            await asyncio.wait(outputs, timeout=grace)
        for task in self._tasks:
            task.cancel()
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
