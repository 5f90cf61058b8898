"""Relay moves a container's stdio between the caller's fds and the sandbox's streams.

The caller's fds may be anything: a terminal, a pipe, a regular file,
/dev/null. Regular files cannot be polled, so blocking reads and writes run
in threads and hand over to the event loop; flow control comes from the
streams' credit (a slow reader on our stdout slows the container down, as a
pipe would under runc).
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from strongbox.sandbox.agent_client import AgentStream
from strongbox.sandbox.sandbox import ProcessIO

_CHUNK = 64 * 1024


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            import select

            select.select([], [fd], [])
            continue
        view = view[n:]


class StdioRelay:
    """Pumps for one process: our stdin -> its stdin, its stdout/stderr -> ours."""

    def __init__(self, io: ProcessIO, *, stdin_fd: int = 0, stdout_fd: int = 1,
                 stderr_fd: int = 2) -> None:
        self.io = io
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.stderr_fd = stderr_fd
        self._outputs: list[asyncio.Task[None]] = []
        self._writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="stdio-out")
        self._output_broken = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for stream, fd in ((self.io.stdout, self.stdout_fd), (self.io.stderr, self.stderr_fd)):
            if stream is not None:
                self._outputs.append(loop.create_task(self._pump_out(stream, fd)))
        if self.io.stdin is not None:
            self._start_input(loop, self.io.stdin)

    async def _pump_out(self, stream: AgentStream, fd: int) -> None:
        loop = asyncio.get_running_loop()
        while data := await stream.read():
            if self._output_broken:
                continue  # keep draining so the process is not blocked forever
            try:
                await loop.run_in_executor(self._writer, _write_all, fd, data)
            except OSError:
                self._output_broken = True  # e.g. EPIPE: our reader went away

    def _start_input(self, loop: asyncio.AbstractEventLoop, stream: AgentStream) -> None:
        """A daemon thread blocks on our stdin; the loop forwards with back-pressure."""
        chunks: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)

        def reader() -> None:
            while True:
                try:
                    data = os.read(self.stdin_fd, _CHUNK)
                except OSError:
                    data = b""
                future = asyncio.run_coroutine_threadsafe(chunks.put(data), loop)
                try:
                    future.result()
                except Exception:
                    return  # the loop is gone
                if not data:
                    return

        async def forward() -> None:
            while True:
                data = await chunks.get()
                try:
                    if not data:
                        stream.close_write()
                        return
                    stream.write(data)
                    await stream.drain()
                except Exception:
                    return  # the container or sandbox is gone: stop feeding it

        loop.create_task(forward())
        threading.Thread(target=reader, name="stdio-in", daemon=True).start()

    async def finish(self, grace: float) -> None:
        """Wait for the outputs to reach end of stream, at most ``grace`` seconds."""
        if self._outputs:
            await asyncio.wait(self._outputs, timeout=grace)
        for task in self._outputs:
            task.cancel()
        self._writer.shutdown(wait=True)
