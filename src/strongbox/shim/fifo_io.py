"""Fifo_io connects a process's stdio streams to the paths containerd gives a task.

containerd (and ``ctr``) hand stdio over as paths: FIFOs it created and
opened on its side, or ``file://`` URIs for log files. This module only
opens them the way containerd's own shims do and hands the descriptors to
the one stdio pump (:mod:`strongbox.sandbox.pump`):

* output FIFOs are opened O_RDWR|O_NONBLOCK (that never blocks: we are a
  reader and a writer at once), log files for appending;
* the stdin FIFO is opened for reading only, later, by the pump (the open
  blocks until a writer appears), so that the writer closing it is the end
  of input; CloseIO ends it too.

An empty path means "not connected": output is drained and dropped, input
is at its end at once.
"""

from __future__ import annotations

import contextlib
import os
from urllib.parse import urlparse

from strongbox.errors import SandboxError
from strongbox.sandbox.pump import ProcessIO, Sink, Source, StdioPump


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


def _stdin_opener(path: str) -> Source:
    return Source(opener=lambda: os.open(path, os.O_RDONLY | os.O_CLOEXEC),
                  opener_now=lambda: os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))


def fifo_pump(io: ProcessIO, stdin: str, stdout: str, stderr: str) -> StdioPump:
    """A pump (not started) between ``io`` and containerd's stdio paths."""
    opened: list[int] = []
    sinks: list[Sink | None] = []
    try:
        for stream, path in ((io.stdout, stdout), (io.stderr, stderr)):
            if stream is None or not path:
                sinks.append(None)
                continue
            fd = _open_output(path)
            opened.append(fd)
            sinks.append(Sink(fd, shared=False))
    except BaseException:
        for fd in opened:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise
    return StdioPump(io, stdin=_stdin_opener(stdin) if stdin else None,
                     stdout=sinks[0], stderr=sinks[1])
