"""Pump moves one process's stdio between host file descriptors and the sandbox's streams.

Both front doors use it, with the descriptors their protocol hands them:

* the monitor (CLI) relays the fds its caller gave ``create``/``exec``: a
  terminal, a pipe from conmon, a regular file, /dev/null. Those are
  *shared* with other processes, so they are never switched to non-blocking
  mode (that would change them for everyone holding them); blocking reads
  and writes run in threads and hand over to the event loop;
* the shim opens the FIFOs and files containerd names (:mod:`strongbox.shim.fifo_io`):
  those are its *own*, so they are non-blocking and polled on the loop (a
  regular file is always ready and written directly). The stdin FIFO is
  opened for reading only, lazily in a thread (the open blocks until a writer
  appears, which may be never), so that the writer closing it is an EOF.
  Closing input (containerd's CloseIO) ends it only after what is already in
  the FIFO: ``ctr`` sends CloseIO once its own stdin ended, before it closes
  its end of the FIFO, with up to a pipe buffer of data still unread there.

Flow control comes from the streams' credit: an output chunk is read from
the guest only after the previous one was written, so a slow reader slows
the container down as a pipe would under runc, and input waits for the
guest to take it (``drain``). A reader that went away (EPIPE) is not an
error: output is then drained and dropped so that the process is never
blocked forever. After the process exits, :meth:`StdioPump.finish` gives the
outputs ``OUTPUT_GRACE`` seconds to reach end of stream, unless the pump is
abandoned (:meth:`StdioPump.abandon`): a forced delete wants nothing more
delivered, so it must never wait on a reader that stopped reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import select
import stat
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

#: How long to keep draining output after the process exited.
OUTPUT_GRACE = 5.0
#: One read of a caller's stdin: a whole DATA frame (the protocol's largest chunk).
CHUNK = 256 * 1024


class Stream(Protocol):
    """One byte stream of a process in the guest (:class:`~.agent_client.AgentStream`)."""

    async def read(self) -> bytes:
        """The next chunk; b"" at end of stream."""
        ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None:
        """Wait until the guest has taken most of what was written."""

    def close_write(self) -> None:
        """End of input."""


@dataclass
class ProcessIO:
    """The host ends of one process's stdio streams (None where not connected)."""

    stdin: Stream | None
    stdout: Stream | None
    stderr: Stream | None
    terminal: bool


def _write_blocking(fd: int, data: bytes) -> None:
    """Write all of ``data`` to a descriptor that may be blocking or not (a thread's job)."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[n:]


class _BlockingWriter:
    """A daemon thread doing one shared fd's blocking writes, in order.

    Not a thread pool: a write stuck on a reader that stopped reading must
    never hold up the loop, the pump's ``finish`` or the interpreter's exit
    (pool threads are joined at exit); this thread is simply abandoned.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._queue: queue.SimpleQueue[tuple[bytes, asyncio.Future[None]] | None] = \
            queue.SimpleQueue()
        threading.Thread(target=self._run, name="stdio-out", daemon=True).start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            data, done = item
            loop = done.get_loop()
            try:
                _write_blocking(self.fd, data)
            except OSError as exc:
                error = exc
                with contextlib.suppress(RuntimeError):  # the loop is gone
                    loop.call_soon_threadsafe(_fail, done, error)
                continue
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, done)

    async def write(self, data: bytes) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put((data, done))
        await done

    def close(self) -> None:
        self._queue.put(None)


class Sink:
    """Where one output stream goes: a host fd, shared (a thread) or our own (the loop)."""

    def __init__(self, fd: int, *, shared: bool) -> None:
        self.fd = fd
        self.shared = shared
        self._writer: _BlockingWriter | None = None
        self._direct = False
        if not shared:
            self._direct = stat.S_ISREG(os.fstat(fd).st_mode)  # cannot be polled; always ready
            if not self._direct:
                os.set_blocking(fd, False)

    async def write(self, data: bytes) -> None:
        if self.shared:
            if self._writer is None:
                self._writer = _BlockingWriter(self.fd)
            await self._writer.write(data)
            return
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                ready = loop.create_future()
                loop.add_writer(self.fd, _resolve, ready)
                try:
                    await ready
                finally:
                    loop.remove_writer(self.fd)

    def close(self) -> None:
        """Let go, never waiting: a shared fd stays open (it is not ours), our own is closed."""
        if self._writer is not None:
            self._writer.close()
        if not self.shared:
            with contextlib.suppress(OSError):
                os.close(self.fd)


def _resolve(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)


#: Opens a source's fd when it is needed (a stdin FIFO: blocks until a writer comes).
Opener = Callable[[], int]


class Source:
    """Where stdin comes from: a shared fd (a reader thread), our own fd, or a path opened later."""

    def __init__(self, fd: int | None = None, *, shared: bool = True,
                 opener: Opener | None = None, opener_now: Opener | None = None) -> None:
        if (fd is None) == (opener is None):
            raise ValueError("a stdin source is an fd or an opener")
        self.fd = fd
        self.shared = shared and opener is None
        self.opener = opener
        #: Opens the same thing without blocking, for what is left once input is closed.
        self.opener_now = opener_now
        #: Write end of the pipe that wakes a shared fd's reader thread to stop.
        self._wake = -1

    def chunks(self, loop: asyncio.AbstractEventLoop, closing: asyncio.Event
               ) -> Callable[[], Awaitable[bytes | None]]:
        """A function giving the next chunk, b"" at EOF; once ``closing`` is set, None
        (a shared fd) or b"" when what was already written has been read (our own)."""
        if self.shared:
            assert self.fd is not None
            wake, self._wake = os.pipe2(os.O_CLOEXEC)
            return _threaded_reader(loop, self.fd, wake, closing)
        return _polled_reader(loop, self, closing)

    def close(self) -> None:
        """Stop reading: a shared fd's thread is woken and lets go of it; our own is closed."""
        if self._wake >= 0:
            os.close(self._wake)  # the thread sees the pipe's end and returns
            self._wake = -1
        if not self.shared and self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


async def _until(awaitable: Awaitable[Any], closing: asyncio.Event) -> tuple[bool, Any]:
    """(done, result) of ``awaitable``, or (False, None) if ``closing`` was set first."""
    work = asyncio.ensure_future(awaitable)
    stop = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if not work.done():
        work.cancel()
        return False, None
    return True, work.result()


def _threaded_reader(loop: asyncio.AbstractEventLoop, fd: int, wake: int,
                     closing: asyncio.Event) -> Callable[[], Awaitable[bytes | None]]:
    """A daemon thread waits on ``fd`` (and on ``wake``, to stop); a small queue gives
    back-pressure. The thread never outlives the pump: once the process is gone it
    must not take the caller's next input (an interactive exec's next line)."""
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)

    def reader() -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(wake, select.POLLIN)
        try:
            while True:
                events = dict(poller.poll())
                if wake in events:
                    return
                try:
                    data = os.read(fd, CHUNK) if not events[fd] & select.POLLNVAL else b""
                except OSError:
                    data = b""
                try:
                    asyncio.run_coroutine_threadsafe(queue.put(data), loop).result()
                except Exception:
                    return  # the loop is gone
                if not data:
                    return
        finally:
            os.close(wake)

    threading.Thread(target=reader, name="stdio-in", daemon=True).start()

    async def next_chunk() -> bytes | None:
        done, data = await _until(queue.get(), closing)
        return data if done else None

    return next_chunk


def _polled_reader(loop: asyncio.AbstractEventLoop, source: Source, closing: asyncio.Event
                   ) -> Callable[[], Awaitable[bytes | None]]:
    """Non-blocking reads on the loop; the fd is opened (in a thread) on first use."""

    async def open_fd() -> int:
        opened: asyncio.Future[int] = loop.create_future()

        def open_blocking() -> None:
            assert source.opener is not None
            try:
                fd = source.opener()
            except OSError as exc:
                loop.call_soon_threadsafe(_fail, opened, exc)
                return
            loop.call_soon_threadsafe(_deliver, opened, fd)

        threading.Thread(target=open_blocking, name="stdin-open", daemon=True).start()
        return await opened

    async def next_chunk() -> bytes | None:
        if source.fd is None:
            done, fd = await _until(open_fd(), closing)
            if not done:
                if source.opener_now is None:
                    return None
                try:
                    fd = source.opener_now()
                except OSError:
                    return None
            source.fd = fd
            os.set_blocking(fd, False)
        fd = source.fd
        while True:
            try:
                return os.read(fd, CHUNK)
            except BlockingIOError:
                if closing.is_set():
                    return b""  # closed: all written before the close has been taken
                readable = loop.create_future()
                loop.add_reader(fd, _resolve, readable)
                try:
                    await _until(readable, closing)
                finally:
                    loop.remove_reader(fd)
            except OSError:
                return b""

    return next_chunk


def _deliver(future: asyncio.Future[int], fd: int) -> None:
    if future.done():
        os.close(fd)  # nobody waits any more
    else:
        future.set_result(fd)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class StdioPump:
    """The pumps of one process: ``stdin`` -> its stdin, its stdout/stderr -> the sinks.

    A stream with no sink is read and dropped (the guest must never block on
    it); a stdin stream with no source gets its end of file at once.
    """

    def __init__(self, io: ProcessIO, *, stdin: Source | None = None,
                 stdout: Sink | None = None, stderr: Sink | None = None) -> None:
        self.io = io
        self.stdin = stdin
        self.sinks = [s for s in (stdout, stderr) if s is not None]
        self._routes = ((io.stdout, stdout), (io.stderr, stderr))
        self._outputs: list[asyncio.Task[None]] = []
        self._input: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._abandoned = asyncio.Event()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for stream, sink in self._routes:
            if stream is not None:
                self._outputs.append(loop.create_task(self._pump_out(stream, sink)))
        if self.io.stdin is not None:
            if self.stdin is None:
                self.io.stdin.close_write()
            else:
                self._input = loop.create_task(self._pump_in(self.io.stdin, self.stdin))

    async def _pump_out(self, stream: Stream, sink: Sink | None) -> None:
        broken = sink is None
        while data := await stream.read():
            if broken:
                continue  # keep draining so the process is not blocked forever
            assert sink is not None
            try:
                await sink.write(data)
            except OSError:
                broken = True  # e.g. EPIPE: the reader went away

    async def _pump_in(self, stream: Stream, source: Source) -> None:
        next_chunk = source.chunks(asyncio.get_running_loop(), self._closing)
        try:
            while (data := await next_chunk()):
                stream.write(data)
                await stream.drain()
        except Exception:
            pass  # the process or the sandbox is gone, or the source failed: stop feeding
        finally:
            with contextlib.suppress(Exception):
                stream.close_write()

    def close_stdin(self) -> None:
        """The caller will send no more input (containerd's CloseIO): end it now."""
        if self._input is None and self.io.stdin is not None and self.stdin is not None:
            with contextlib.suppress(Exception):
                self.io.stdin.close_write()
        self._closing.set()

    def abandon(self) -> None:
        """Nobody will wait for the output any more (a forced delete): stop at once.

        A :meth:`finish` under way, or any later one, then flushes nothing and
        releases everything without waiting, whatever the sinks' readers do.
        """
        self._abandoned.set()
        self.close_stdin()

    async def finish(self, grace: float = OUTPUT_GRACE) -> None:
        """After the process exited: flush what is left (at most ``grace`` s; nothing once
        abandoned), release all."""
        self.close_stdin()
        pending = [t for t in self._outputs if not t.done()]
        if pending and not self._abandoned.is_set():
            await _until(asyncio.wait(pending, timeout=grace), self._abandoned)
        for task in self._outputs:
            task.cancel()
        if self._input is not None:
            if self._abandoned.is_set():
                self._input.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._input, 1.0)
        for sink in self.sinks:
            sink.close()
        if self.stdin is not None:
            self.stdin.close()
