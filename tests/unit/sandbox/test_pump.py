"""The stdio pump: a process's streams in the guest <-> the host fds of a front door.

Both front doors move every byte of a container's stdio through
:class:`~strongbox.sandbox.pump.StdioPump`, with very different fds: the
monitor's are *shared* (a terminal or conmon's pipes: blocking, never closed
by us), the shim's are its *own* (containerd's FIFOs and files: polled on the
loop, closed at the end, stdin opened lazily). What must hold for both, and is
checked here without a VM against fake streams: output arrives intact and in
order, a slow or absent reader slows the guest down instead of the host
buffering without bound, a reader that went away never blocks the process,
stdin's end reaches the guest as close_write, ``finish`` is bounded by its
grace period, and no fd is leaked.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import inspect
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from strongbox.sandbox.pump import CHUNK, OUTPUT_GRACE, ProcessIO, Sink, Source, StdioPump
from tests.framework.fake_sandbox import FakeStream

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
PIPE_SIZE = 64 * 1024


def run(coro: Coroutine[Any, Any, None]) -> None:
    """One scenario on a fresh loop, bounded so that a hang is a failure, not a stall."""
    asyncio.run(asyncio.wait_for(coro, 10))


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_fd_leaks() -> Iterator[None]:
    """Every scenario closes what it opened; the pump must close (only) what is its own."""
    before = open_fds()
    yield
    leaked = {fd: _target(fd) for fd in open_fds() - before}
    assert not leaked, f"fds leaked: {leaked}"


def fds_on(path: Path) -> list[str]:
    """Our fds open on ``path`` (by target, not number: a closed number is soon reused)."""
    return [fd for fd in open_fds() if _target(fd) == str(path)]


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


def pipe() -> tuple[int, int]:
    r, w = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(w, F_SETPIPE_SZ, PIPE_SIZE)  # a known capacity for the back-pressure checks
    return r, w


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def close(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def read_to_eof(fd: int) -> bytes:
    out = bytearray()
    while data := os.read(fd, CHUNK):
        out += data
    return bytes(out)


class Reader:
    """A thread reading a pipe's read end to EOF, optionally slowly."""

    def __init__(self, fd: int, *, size: int = CHUNK, pause: float = 0.0) -> None:
        self.fd = fd
        self.data = bytearray()
        self._size = size
        self._pause = pause
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while chunk := os.read(self.fd, self._size):
            self.data += chunk
            if self._pause:
                time.sleep(self._pause)

    def join(self) -> bytes:
        self._thread.join(10)
        assert not self._thread.is_alive(), "the reader never saw EOF"
        return bytes(self.data)


class QueuedStream:
    """A guest output stream whose chunks are all ready at once; counts the reads."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.queued = deque(chunks)
        self.reads = 0

    async def read(self) -> bytes:
        self.reads += 1
        await asyncio.sleep(0)
        return self.queued.popleft() if self.queued else b""

    def write(self, data: bytes) -> None:
        raise AssertionError("an output stream is never written")

    async def drain(self) -> None:
        pass

    def close_write(self) -> None:
        pass


def chunks(count: int, size: int = CHUNK) -> list[bytes]:
    """Distinct chunks, so that a lost, repeated or reordered one is seen."""
    return [i.to_bytes(4, "big") * (size // 4) for i in range(count)]


async def settle(condition: Callable[[], bool] | None = None, timeout: float = 2.0) -> None:
    """Let the loop and its threads run until ``condition`` (or a short while without one)."""
    deadline = time.monotonic() + (timeout if condition else 0.2)
    while time.monotonic() < deadline:
        if condition is not None and condition():
            return
        await asyncio.sleep(0.01)
    assert condition is None, "condition never became true"


def output_only(stdout: Any, stderr: Any = None, *, terminal: bool = False) -> ProcessIO:
    return ProcessIO(stdin=None, stdout=stdout, stderr=stderr, terminal=terminal)


def input_only(stdin: Any) -> ProcessIO:
    return ProcessIO(stdin=stdin, stdout=None, stderr=None, terminal=False)


# --- output ----------------------------------------------------------------------------


def test_output_reaches_a_shared_pipe_left_blocking_and_open() -> None:
    r, w = pipe()

    async def scenario() -> None:
        out, err = FakeStream(), FakeStream()
        pump = StdioPump(output_only(out, err), stdout=Sink(w, shared=True),
                         stderr=Sink(w, shared=True))
        pump.start()
        out.feed(b"hello ")
        await settle(lambda: not out.chunks.qsize())
        err.feed(b"world\n")
        out.eof()
        err.eof()
        await pump.finish(grace=2)

    try:
        run(scenario())
        assert is_open(w), "a shared fd is not the pump's to close"
        assert os.get_blocking(w), "a shared fd must never be switched to non-blocking"
        os.close(w)
        assert read_to_eof(r) == b"hello world\n"
    finally:
        close(r, w)


def test_output_reaches_an_own_pipe_polled_and_closed_by_finish() -> None:
    r, w = pipe()

    async def scenario() -> None:
        out = FakeStream()
        sink = Sink(w, shared=False)
        assert not os.get_blocking(w), "an own pipe is polled on the loop"
        pump = StdioPump(output_only(out), stdout=sink)
        pump.start()
        for part in (b"one ", b"two ", b"three\n"):
            out.feed(part)
        out.eof()
        await pump.finish(grace=2)

    try:
        run(scenario())
        assert not is_open(w), "finish closes an own sink"
        assert read_to_eof(r) == b"one two three\n"
    finally:
        close(r, w)


def test_output_to_a_regular_file_is_written_directly(tmp_path: Path) -> None:
    path = tmp_path / "log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    data = chunks(8, 1000)

    async def scenario() -> None:
        out = FakeStream()
        pump = StdioPump(output_only(out), stdout=Sink(fd, shared=False))
        pump.start()
        for part in data:
            out.feed(part)
        out.eof()
        await pump.finish(grace=2)

    try:
        run(scenario())
        assert not is_open(fd)
        assert path.read_bytes() == b"".join(data)
    finally:
        close(fd)


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "own"])
def test_large_output_arrives_intact_and_in_order_to_a_slow_reader(shared: bool) -> None:
    r, w = pipe()
    data = chunks(256, 64 * 1024)  # 16 MiB
    reader = Reader(r, size=32 * 1024, pause=0.0005)

    async def scenario() -> None:
        out = FakeStream()
        pump = StdioPump(output_only(out), stdout=Sink(w, shared=shared))
        pump.start()
        for part in data:
            out.feed(part)
        out.eof()
        await pump.finish(grace=8)

    try:
        run(scenario())
        if shared:
            os.close(w)
        received = reader.join()
        assert len(received) == 16 << 20
        assert received == b"".join(data)
    finally:
        close(w)
        close(r)


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "own"])
def test_nobody_reading_holds_the_rest_in_the_guest(shared: bool) -> None:
    r, w = pipe()
    total = 32
    data = chunks(total)
    stream = QueuedStream(list(data))
    reader: list[Reader] = []

    async def scenario() -> None:
        pump = StdioPump(output_only(stream), stdout=Sink(w, shared=shared))
        pump.start()
        await settle()  # the pipe fills; the pump must stop reading from the guest
        # one chunk fills the pipe, the next one waits in the pump's write, no more
        assert stream.reads <= 3, f"read {stream.reads} chunks with nobody reading"
        assert len(stream.queued) >= total - 3
        reads = stream.reads
        await settle()
        assert stream.reads == reads, "reads went on while the pipe was full"
        reader.append(Reader(r))  # now someone reads: everything flows, in order
        await settle(lambda: stream.reads == total + 1)
        await pump.finish(grace=5)

    try:
        run(scenario())
        if shared:
            os.close(w)
        assert reader[0].join() == b"".join(data)
    finally:
        close(w)
        close(r)


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "own"])
def test_a_reader_that_went_away_is_not_an_error(shared: bool) -> None:
    r, w = pipe()
    os.close(r)  # EPIPE on every write
    out = chunks(16)

    async def scenario() -> None:
        stream = FakeStream()
        pump = StdioPump(output_only(stream), stdout=Sink(w, shared=shared))
        pump.start()
        for part in out:
            stream.feed(part)
        stream.eof()
        start = time.monotonic()
        await pump.finish(grace=5)
        assert time.monotonic() - start < 2, "the drain after EPIPE must not wait for the grace"
        assert stream.chunks.empty(), "the rest of the output is drained and dropped"

    try:
        run(scenario())
    finally:
        close(w)


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "own"])
def test_a_reader_going_away_while_the_pump_waits_unblocks_it(shared: bool) -> None:
    r, w = pipe()
    total = 32
    stream = QueuedStream(chunks(total))

    async def scenario() -> None:
        pump = StdioPump(output_only(stream), stdout=Sink(w, shared=shared))
        pump.start()
        await settle()
        assert stream.reads <= 3  # blocked on the full pipe
        os.close(r)
        await settle(lambda: stream.reads == total + 1)  # drained to its end
        start = time.monotonic()
        await pump.finish(grace=5)
        assert time.monotonic() - start < 2

    try:
        run(scenario())
    finally:
        close(r, w)


def test_finish_is_bounded_with_a_shared_sink_nobody_reads() -> None:
    r, w = pipe()
    finished: list[float] = []

    async def scenario() -> None:
        out = FakeStream()
        pump = StdioPump(output_only(out), stdout=Sink(w, shared=True))
        pump.start()
        for part in chunks(4):  # the second chunk's write blocks in the thread: pipe full
            out.feed(part)
        await settle()
        start = time.monotonic()
        await pump.finish(grace=0.3)
        finished.append(time.monotonic() - start)

    # On its own thread: a blocked loop cannot be timed out from within (wait_for needs the loop).
    thread = threading.Thread(target=run, args=(scenario(),), daemon=True)
    thread.start()
    thread.join(2.0)
    bounded = not thread.is_alive()
    reader = Reader(r)  # unblock the write, whatever happened, so nothing is left behind
    thread.join(10)
    os.close(w)
    reader.join()
    os.close(r)
    assert bounded, "finish(grace=0.3) had not returned after 2 s"
    assert finished and finished[0] < 1.5


def test_a_terminal_has_no_stderr() -> None:
    r, w = pipe()

    async def scenario() -> None:
        out = FakeStream()
        pump = StdioPump(output_only(out, None, terminal=True), stdout=Sink(w, shared=False),
                         stderr=None)
        pump.start()
        out.feed(b"$ ")
        out.eof()
        await pump.finish(grace=2)

    try:
        run(scenario())
        assert read_to_eof(r) == b"$ "
    finally:
        close(r, w)


def test_a_stream_without_a_sink_is_drained_and_dropped() -> None:
    r, w = pipe()

    async def scenario() -> None:
        out, err = FakeStream(), FakeStream()
        pump = StdioPump(output_only(out, err), stdout=Sink(w, shared=False))
        assert len(pump.sinks) == 1
        pump.start()
        for part in chunks(64):  # 4 MiB: far more than any pipe would hold
            err.feed(part)
        err.eof()
        out.feed(b"kept")
        out.eof()
        await pump.finish(grace=2)
        assert err.chunks.empty()

    try:
        run(scenario())
        assert read_to_eof(r) == b"kept"
    finally:
        close(r, w)


def test_output_without_any_sink() -> None:
    async def scenario() -> None:
        out = FakeStream()
        pump = StdioPump(output_only(out))
        pump.start()
        for part in chunks(4):
            out.feed(part)
        out.eof()
        await pump.finish(grace=2)
        assert out.chunks.empty()

    run(scenario())


@pytest.mark.parametrize("sink", ["shared", "own", "none"])
def test_finish_gives_up_after_the_grace_when_output_never_ends(sink: str) -> None:
    r, w = pipe()
    assert inspect.signature(StdioPump.finish).parameters["grace"].default == OUTPUT_GRACE

    async def scenario() -> None:
        out = FakeStream()
        pump = StdioPump(output_only(out),
                         stdout=None if sink == "none" else Sink(w, shared=sink == "shared"))
        pump.start()
        out.feed(b"partial")  # and never an EOF
        start = time.monotonic()
        await pump.finish(grace=0.3)
        elapsed = time.monotonic() - start
        assert 0.25 <= elapsed < 1.5, elapsed

    try:
        run(scenario())
        if sink == "shared":
            os.close(w)
        if sink != "none":
            assert read_to_eof(r) == b"partial"
    finally:
        close(r, w)


# --- input -----------------------------------------------------------------------------


def test_stdin_from_a_shared_pipe_until_the_writer_closes() -> None:
    r, w = pipe()
    data = b"".join(chunks(16, 16 * 1024))  # 256 KiB: several reads and queue turns

    async def scenario() -> None:
        stdin = FakeStream()
        pump = StdioPump(input_only(stdin), stdin=Source(r))
        pump.start()
        await asyncio.to_thread(os.write, w, b"first line\n")
        await settle(lambda: bytes(stdin.written) == b"first line\n")
        assert not stdin.closed.is_set()
        await asyncio.to_thread(_write_all, w, data)
        os.close(w)  # the writer is done: end of input
        await asyncio.wait_for(stdin.closed.wait(), 5)
        assert bytes(stdin.written) == b"first line\n" + data
        await pump.finish(grace=1)

    try:
        run(scenario())
        assert is_open(r), "a shared stdin fd is not the pump's to close"
        assert os.get_blocking(r)
    finally:
        close(r, w)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def test_stdin_from_an_own_fd_is_polled_and_closed() -> None:
    r, w = pipe()

    async def scenario() -> None:
        stdin = FakeStream()
        source = Source(r, shared=False)
        pump = StdioPump(input_only(stdin), stdin=source)
        pump.start()
        os.write(w, b"abc")
        os.close(w)
        await asyncio.wait_for(stdin.closed.wait(), 5)
        assert bytes(stdin.written) == b"abc"
        await pump.finish(grace=1)
        assert source.fd is None

    try:
        run(scenario())
        assert not is_open(r)
    finally:
        close(r, w)


def test_stdin_fifo_is_opened_lazily_when_a_writer_comes(tmp_path: Path) -> None:
    fifo = tmp_path / "stdin"
    os.mkfifo(fifo)
    opened: list[int] = []

    def opener() -> int:
        fd = os.open(fifo, os.O_RDONLY | os.O_CLOEXEC)  # blocks until a writer opens it
        opened.append(fd)
        return fd

    async def scenario() -> None:
        stdin = FakeStream()
        source = Source(opener=opener)
        pump = StdioPump(input_only(stdin), stdin=source)
        pump.start()
        await settle()
        assert not opened and not stdin.written and not stdin.closed.is_set()
        w = await asyncio.to_thread(os.open, fifo, os.O_WRONLY)
        try:
            os.write(w, b"hello ")
            await settle(lambda: bytes(stdin.written) == b"hello ")
            os.write(w, b"world")
        finally:
            os.close(w)
        await asyncio.wait_for(stdin.closed.wait(), 5)
        assert bytes(stdin.written) == b"hello world"
        await pump.finish(grace=1)
        assert source.fd is None

    run(scenario())
    assert len(opened) == 1
    assert not fds_on(fifo)


def test_close_stdin_before_any_writer_ends_input(tmp_path: Path) -> None:
    fifo = tmp_path / "stdin"
    os.mkfifo(fifo)
    opened: list[int] = []

    def opener() -> int:
        fd = os.open(fifo, os.O_RDONLY | os.O_CLOEXEC)
        opened.append(fd)
        return fd

    async def scenario() -> None:
        stdin = FakeStream()
        pump = StdioPump(input_only(stdin), stdin=Source(opener=opener))
        pump.start()
        await settle(lambda: _thread_named("stdin-open"))
        pump.close_stdin()
        await asyncio.wait_for(stdin.closed.wait(), 2)
        start = time.monotonic()
        await pump.finish(grace=1)
        assert time.monotonic() - start < 1.5
        assert not stdin.written
        # a writer coming late: the fd the opener then gets is closed, not leaked
        w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            await settle(lambda: not _thread_named("stdin-open"))
            await settle(lambda: bool(opened) and len(fds_on(fifo)) == 1)  # only ``w``
        finally:
            os.close(w)

    run(scenario())


class SlowStream(FakeStream):
    """A guest that takes input slowly: the FIFO still holds data when input is closed."""

    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()

    async def drain(self) -> None:
        await self.go.wait()


def test_close_stdin_keeps_what_the_fifo_still_holds(tmp_path: Path) -> None:
    """ctr's order: write everything, CloseIO, only then close its end of the FIFO.

    Whatever was written before the CloseIO must reach the process, in full.
    """
    fifo = tmp_path / "stdin"
    os.mkfifo(fifo)
    data = os.urandom(3 * CHUNK)  # more than one read takes, less than the FIFO holds

    async def scenario() -> None:
        stdin = SlowStream()
        source = Source(opener=lambda: os.open(fifo, os.O_RDONLY | os.O_CLOEXEC),
                        opener_now=lambda: os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        pump = StdioPump(input_only(stdin), stdin=source)
        pump.start()
        w = await asyncio.to_thread(os.open, fifo, os.O_WRONLY)
        try:
            fcntl.fcntl(w, F_SETPIPE_SZ, 4 * CHUNK)  # the writes below all complete
            for i in range(0, len(data), 4096):
                os.write(w, data[i:i + 4096])
            await settle(lambda: len(stdin.written) > 0)
            pump.close_stdin()  # the writer is still open, the FIFO not yet read
            stdin.go.set()
            await asyncio.wait_for(stdin.closed.wait(), 5)
        finally:
            os.close(w)
        assert bytes(stdin.written) == data
        await pump.finish(grace=1)

    run(scenario())
    assert not fds_on(fifo)


def test_close_stdin_while_the_open_is_pending_still_reads_the_fifo(tmp_path: Path) -> None:
    """CloseIO may come before the blocking open of the FIFO has returned."""
    fifo = tmp_path / "stdin"
    os.mkfifo(fifo)
    release = threading.Event()

    def stuck_opener() -> int:
        release.wait(5)
        return os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)

    async def scenario() -> None:
        stdin = FakeStream()
        source = Source(opener=stuck_opener,
                        opener_now=lambda: os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        pump = StdioPump(input_only(stdin), stdin=source)
        w = os.open(fifo, os.O_RDWR)  # a writer that holds the FIFO open
        try:
            os.write(w, b"left in the fifo")
            pump.start()
            await settle(lambda: _thread_named("stdin-open"))
            pump.close_stdin()
            await asyncio.wait_for(stdin.closed.wait(), 5)
            assert bytes(stdin.written) == b"left in the fifo"
            release.set()
            await settle(lambda: not _thread_named("stdin-open"))
            await pump.finish(grace=1)
        finally:
            os.close(w)

    run(scenario())
    assert not fds_on(fifo)


def _thread_named(name: str) -> bool:
    return any(t.name == name for t in threading.enumerate())


def test_stdin_without_a_source_gets_eof_at_once() -> None:
    async def scenario() -> None:
        stdin, out = FakeStream(), FakeStream()
        pump = StdioPump(ProcessIO(stdin=stdin, stdout=out, stderr=None, terminal=True))
        pump.start()
        assert stdin.closed.is_set()
        out.eof()
        await pump.finish(grace=1)
        assert not stdin.written

    run(scenario())


def test_a_source_is_an_fd_or_an_opener() -> None:
    opener: Callable[[], int] = lambda: 0  # noqa: E731
    with pytest.raises(ValueError):
        Source()
    with pytest.raises(ValueError):
        Source(0, opener=opener)
    assert not Source(opener=opener).shared  # what it opens is its own


# --- both directions -------------------------------------------------------------------


def test_a_whole_process_shared_and_own() -> None:
    """The monitor's shape (shared stdin) and the shim's (own outputs) at once, then EOF."""
    in_r, in_w = pipe()
    out_r, out_w = pipe()
    err_r, err_w = pipe()

    async def scenario() -> None:
        io = ProcessIO(stdin=FakeStream(), stdout=FakeStream(), stderr=FakeStream(),
                       terminal=False)
        assert isinstance(io.stdin, FakeStream)
        assert isinstance(io.stdout, FakeStream)
        assert isinstance(io.stderr, FakeStream)
        pump = StdioPump(io, stdin=Source(in_r), stdout=Sink(out_w, shared=False),
                         stderr=Sink(err_w, shared=True))
        pump.start()
        os.write(in_w, b"input")
        os.close(in_w)
        await asyncio.wait_for(io.stdin.closed.wait(), 5)
        io.stdout.feed(b"out")
        io.stderr.feed(b"err")
        io.stdout.eof()
        io.stderr.eof()
        await pump.finish(grace=2)
        assert bytes(io.stdin.written) == b"input"

    try:
        run(scenario())
        os.close(err_w)
        assert read_to_eof(out_r) == b"out"
        assert read_to_eof(err_r) == b"err"
    finally:
        close(in_r, in_w, out_r, out_w, err_r, err_w)



@pytest.mark.parametrize("when", ["before", "during"])
def test_an_abandoned_pump_finishes_at_once_with_a_sink_nobody_reads(when: str) -> None:
    """A forced delete: not even the grace is waited for (issue 11: delete -f took seconds)."""
    r, w = pipe()
    finished: list[float] = []

    async def scenario() -> None:
        out, inp = FakeStream(), FakeStream()
        stdin_r, stdin_w = os.pipe()
        pump = StdioPump(ProcessIO(stdin=inp, stdout=out, stderr=None, terminal=False),
                         stdin=Source(stdin_r), stdout=Sink(w, shared=True))
        pump.start()
        for part in chunks(4):  # the pipe fills: the pump's write blocks in its thread
            out.feed(part)
        await settle()
        start = time.monotonic()
        if when == "before":
            pump.abandon()
            await pump.finish(grace=OUTPUT_GRACE)
        else:
            finishing = asyncio.ensure_future(pump.finish(grace=OUTPUT_GRACE))
            await asyncio.sleep(0.1)
            pump.abandon()
            await finishing
        finished.append(time.monotonic() - start)
        assert inp.closed.is_set()  # the process's stdin was ended too
        os.close(stdin_w)
        os.close(stdin_r)

    thread = threading.Thread(target=run, args=(scenario(),), daemon=True)
    thread.start()
    thread.join(OUTPUT_GRACE - 1)
    bounded = not thread.is_alive()
    reader = Reader(r)  # unblock the abandoned write so that nothing is left behind
    thread.join(10)
    os.close(w)
    reader.join()
    os.close(r)
    assert bounded, "finish of an abandoned pump waited for its output"
    assert finished and finished[0] < 0.5, finished
