"""Daemon starts a container's monitor as a background process of the caller.

``create`` (and ``run --detach``) fork: the child becomes the monitor, the
parent waits on a pipe until the container is created (or has failed),
writes --pid-file, and exits. The monitor stays a descendant of the caller,
so a subreaper (conmon, containerd's runc shim) can wait for it. It is PID 1
of a pid namespace, with a mount namespace and /proc of its own
(:mod:`.ownerns`): a client entering its mount namespace (podman's ``top``)
finds only the monitor and QEMU, never the host's processes.

The monitor keeps the stdio it inherited for the container and points its
own fds 0-2 at /dev/null: nothing the monitor says may end up in the
container's log. When the container ends the monitor exits the same way: a
code, or the same signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from strongbox import log
from strongbox.atomicfile import atomic_write
from strongbox.errors import StateDirError, StrongboxError
from strongbox.runtime import ownerns
from strongbox.sandbox.sandbox import ExitStatus

#: main(notify, container stdio fds) -> how the container ended.
MonitorMain = Callable[[Callable[[str], None], tuple[int, int, int]],
                      Coroutine[Any, Any, ExitStatus]]


def spawn(main: MonitorMain, *, pid_file: str | None) -> int:
    """Fork the monitor running ``main(notify)``; return its pid once it reported ready."""
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    sys.stdout.flush()
    sys.stderr.flush()
    ownerns.prepare_fork()  # the monitor is PID 1 of a pid namespace of its own
    pid = os.fork()
    if pid == 0:  # the monitor
        os.close(ready_r)
        _become_monitor(main, ready_w)
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as pipe:
        message = pipe.read().decode(errors="replace")
    if message != "ok":
        os.waitpid(pid, 0)
        raise StrongboxError(message.removeprefix("error: ") or "the monitor died while "
                             "creating the container")
    if pid_file:
        try:
            write_pid_file(Path(pid_file), pid)
        except StateDirError:
            _abandon(pid)  # a monitor nobody can find must not outlive the failed command
            raise
    return pid


def _abandon(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def write_pid_file(path: Path, pid: int) -> None:
    """Write ``pid`` atomically; one line naming the file if that cannot be done."""
    try:
        atomic_write(path.absolute(), f"{pid}".encode())
    except OSError as exc:
        raise StateDirError(f"--pid-file {path}: cannot write ({exc.strerror or exc})") \
            from exc


def _become_monitor(main: MonitorMain, ready_fd: int) -> None:
    code = 1
    try:
        ownerns.enter()
        os.setsid()
        notified = False

        def notify(message: str) -> None:
            nonlocal notified
            if not notified:
                notified = True
                try:
                    os.write(ready_fd, message.encode())
                finally:
                    os.close(ready_fd)

        log.quiet_stderr()
        stdio = _detach_stdio()
        status = asyncio.run(main(notify, stdio))
        notify("error: the container exited before it was created")
        mirror_exit(status)
    except BaseException as exc:  # report, never let the parent hang or a traceback escape
        try:
            detail = str(exc) if isinstance(exc, StrongboxError) else repr(exc)
            os.write(ready_fd, f"error: {detail}".encode())
        except OSError:
            pass
        log.debug_traceback(traceback.format_exc())
    finally:
        os._exit(code)


def _detach_stdio() -> tuple[int, int, int]:
    """Keep the inherited stdio for the container; the monitor's own 0-2 go to /dev/null."""
    kept = (os.dup(0), os.dup(1), os.dup(2))
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    return kept


def mirror_exit(status: ExitStatus) -> None:
    """Exit as the container did: with its code, or killed by its signal. (A monitor is
    PID 1 of its pid namespace, which no signal of its own kills: it exits 128+n, what
    conmon and containerd's runc shim report for a death by signal anyway.)"""
    if status.signal:
        if status.signal not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(status.signal, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [status.signal])
        os.kill(os.getpid(), status.signal)
    os._exit(status.code)
