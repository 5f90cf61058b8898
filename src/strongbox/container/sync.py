"""Sync is the two-pipe conversation between the launcher and the process it forked.

Child to parent, one pipe, line by line:

* with a user namespace, first ``userns`` (it has unshared one: the parent
  writes its maps and answers with one byte on the second pipe), then
  ``pid\\t<N>`` (the container's PID 1, forked inside the new pid
  namespace, is N: the reporting process exits and N carries on),
* ``error\\t<stage>\\t<errno or ->\\t<message>`` if setup failed (then it exits),
* ``ready[\t<note>...]`` when it is fully set up and waiting at the start
  barrier; notes are things the caller should know (e.g. that pivot_root
  was refused and the root is only a chroot),
* after the barrier, nothing more on success: the write end is close-on-exec,
  so a successful execve shows up as EOF; otherwise one line of error text
  (the *exec result*, read by :func:`read_exec_result`).

Parent to child, a second pipe: one byte releases the barrier; EOF without
it means the parent gave up (or died) and the child exits quietly. Before
it, the ``userns`` answer is the byte :data:`MAPPED`.
"""

from __future__ import annotations

import os
import select
import time

from strongbox.container.errors import ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

START = b"s"
MAPPED = b"m"


class ChildEnd:
    """The container process's side: report setup errors, ready, wait for start."""

    __slots__ = ("report_fd", "start_fd")

    def __init__(self, report_fd: int, start_fd: int) -> None:
        self.report_fd = report_fd
        self.start_fd = start_fd

    def _write(self, data: bytes) -> None:
        try:
            os.write(self.report_fd, data)
        except OSError:
            pass  # the parent is gone: nobody left to tell

    def setup_failed(self, err: ContainerError) -> None:
        errno = "-" if err.errno is None else str(err.errno)
        line = "\t".join(("error", err.stage, errno, err.message.replace("\t", " ")))
        self._write(line.encode(errors="replace") + b"\n")

    def exec_failed(self, err: ContainerError) -> None:
        self._write(err.message.encode(errors="replace") + b"\n")

    def request_mapping(self) -> None:
        """Ask the parent to write this process's uid/gid maps; returns once it has."""
        self._write(b"userns\n")
        while True:
            try:
                got = os.read(self.start_fd, 1)
            except InterruptedError:
                continue
            if got != MAPPED:
                raise ContainerError("userns", "the runtime did not map the user namespace")
            return

    def report_pid(self, pid: int) -> None:
        """Say the container process is now ``pid`` (the caller's view of it)."""
        self._write(f"pid\t{pid}\n".encode())

    def ready_and_wait(self, notes: list[str] | None = None) -> bool:
        """Say ready, then block on the barrier; False if the parent went away instead."""
        fields = ["ready", *(n.replace("\t", " ").replace("\n", " ") for n in notes or [])]
        self._write("\t".join(fields).encode(errors="replace") + b"\n")
        while True:
            try:
                got = os.read(self.start_fd, 1)
            except InterruptedError:
                continue
            os.close(self.start_fd)
            return got == START


def wait_ready(report_fd: int, event: Callable[[list[str]], None] | None = None
               ) -> list[str]:
    """In the parent: block until the child is ready (returns its notes), or raise its error.

    ``userns`` and ``pid`` lines come before that; ``event`` gets their fields.
    """
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = os.read(report_fd, 4096)
            if not chunk:
                raise ContainerError("start", "container process exited during setup "
                                     "without saying why")
            buf += chunk
        raw, buf = buf.split(b"\n", 1)
        fields = raw.decode(errors="replace").split("\t")
        if fields[0] in ("userns", "pid") and event is not None:
            event(fields)
            continue
        break
    if fields[0] == "ready":
        return fields[1:]
    if len(fields) >= 4 and fields[0] == "error":
        errno = None if fields[2] == "-" else int(fields[2])
        raise ContainerError(fields[1], "\t".join(fields[3:]), errno)
    raise ContainerError("start", "container process exited during setup without saying why")


def read_exec_result(error_fd: int, timeout: float) -> str | None:
    """Wait for the exec result: None when execve succeeded, else the error line.

    Raises ContainerError if neither EOF nor an error arrives within ``timeout``.
    """
    poller = select.poll()
    poller.register(error_fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            raise ContainerError("exec", f"no exec result within {timeout:g}s")
        chunk = os.read(error_fd, 4096)
        if not chunk:
            break
        data += chunk
    text = data.decode(errors="replace").strip()
    return text.splitlines()[0] if text else None

