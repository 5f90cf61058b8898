"""Run a container to completion and collect what it printed: the tests' one way in.

``run()`` is what an agent does, minus the RPC: launch, start, read the
exec result, pump stdout/stderr, reap. Everything it opens it closes, and
on a timeout it kills and reaps, so a failing test leaves nothing behind.
"""

from __future__ import annotations

import os
import select
import time
from pathlib import Path
from typing import Any

from strongbox.container.launcher import (
    Launched,
    LaunchRequest,
    kill_and_reap,
    launch,
    read_exec_result,
)


class Result:
    """What came out of one container run."""

    def __init__(self, status: int, stdout: str, stderr: str, exec_error: str | None) -> None:
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.exec_error = exec_error

    @property
    def exit_code(self) -> int:
        return os.waitstatus_to_exitcode(self.status)

    def __repr__(self) -> str:
        return (f"Result(exit={self.exit_code}, stdout={self.stdout!r}, "
                f"stderr={self.stderr!r}, exec_error={self.exec_error!r})")


def shell(spec: dict[str, Any], script: str) -> dict[str, Any]:
    """``spec`` running ``sh -c script``."""
    spec["process"]["args"] = ["sh", "-c", script]
    return spec


def run(spec: dict[str, Any], rootfs: Path, *, timeout: float = 10.0,
        mount_sources: dict[int, str] | None = None) -> Result:
    """Launch ``spec`` on ``rootfs``, start it, and wait for it to exit."""
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        launched = launch(LaunchRequest(container_id="test", spec=spec, rootfs=str(rootfs),
                                        stdio=(null, out_w, err_w),
                                        mount_sources=mount_sources or {}))
    except BaseException:
        for fd in (out_r, err_r):
            os.close(fd)
        raise
    finally:
        for fd in (out_w, err_w, null):
            os.close(fd)
    return finish(launched, {out_r: b"", err_r: b""}, timeout)


def finish(launched: Launched, outputs: dict[int, bytes], timeout: float) -> Result:
    """Start ``launched``, pump ``outputs`` until EOF, reap it; closes every fd involved."""
    try:
        launched.start()
        exec_error = read_exec_result(launched.error_fd, timeout)
        pump(outputs, timeout)
        status = wait(launched.pid, timeout)
    except BaseException:
        kill_and_reap(launched.pid)
        raise
    finally:
        launched.close()
        for fd in outputs:
            os.close(fd)
    out, err = [*outputs.values(), b"", b""][:2]
    return Result(status, out.decode(), err.decode(), exec_error)


def pump(outputs: dict[int, bytes], timeout: float) -> None:
    """Read every fd of ``outputs`` until EOF (or EIO: a pty whose slave is gone)."""
    open_fds = set(outputs)
    deadline = time.monotonic() + timeout
    while open_fds:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("container output did not end in time")
        ready, _, _ = select.select(list(open_fds), [], [], remaining)
        for fd in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if chunk:
                outputs[fd] += chunk
            else:
                open_fds.discard(fd)


def wait(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"container process {pid} did not exit")
        time.sleep(0.005)
