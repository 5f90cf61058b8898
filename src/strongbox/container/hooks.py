"""Hooks runs a container's ``startContainer`` hooks in its init, just before the workload.

The runtime spec calls them "in the container namespace" after ``start``
and before the user program; runc runs them from its init after
pivot_root, once the process is the configured user with its
capabilities set, right before the exec, with the state (status
``created``, ``pid`` as the container sees its init) on stdin. strongbox
does the same inside the guest, so ``path`` is resolved in the
container's root. The other hook kinds run on the host
(``strongbox.sandbox.hooks``), which gives the guest only these
(``sandbox/guestspec.py``), plus the bundle path for the state.

A failing hook (non-zero exit, a signal, its ``timeout`` passed, or a
program that cannot run) fails the start with one line naming the hook
and why; the init then exits without running the workload.
"""

from __future__ import annotations

import _signal
import json
import os
import select
import time

from strongbox.container.errors import ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Where the guest spec carries what the host knows for the state (``bundle``).
STATE_KEY = "strongbox"
#: How much of a failed hook's output its error line quotes (as the host side does).
_SHOWN = 200
_SIGKILL = 9


class Hook:
    """One ``hooks.startContainer`` entry, checked in the caller."""

    __slots__ = ("args", "env", "name", "path", "timeout")

    def __init__(self, index: int, entry: dict[str, Any]) -> None:
        path = entry.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ContainerError("hook", f"hooks.startContainer[{index}].path must be an "
                                 "absolute path")
        self.path = path
        self.args = [str(a) for a in entry.get("args") or [path]]
        self.env = dict(str(e).split("=", 1) for e in entry.get("env") or [] if "=" in str(e))
        timeout = entry.get("timeout")
        self.timeout: float | None = None if timeout is None else float(timeout)
        self.name = f"startContainer hook {index} ({path})"


class StartHooks:
    """The hooks and the state they are given on stdin."""

    __slots__ = ("annotations", "bundle", "hooks")

    def __init__(self, spec: dict[str, Any]) -> None:
        entries = (spec.get("hooks") or {}).get("startContainer") or []
        self.hooks = [Hook(i, e) for i, e in enumerate(entries)]
        self.bundle = str((spec.get(STATE_KEY) or {}).get("bundle") or "")
        self.annotations = dict(spec.get("annotations") or {})

    def state(self, container_id: str) -> bytes:
        """runtime.md "State" as runc gives it to these hooks: status created, our own pid."""
        return json.dumps({"ociVersion": "1.0.2", "id": container_id, "status": "created",
                           "pid": os.getpid(), "bundle": self.bundle,
                           "annotations": self.annotations}).encode()

    def run(self, container_id: str) -> None:
        """Every hook in order; the first failure raises ContainerError (stage ``hook``)."""
        if not self.hooks:
            return
        state = self.state(container_id)
        for hook in self.hooks:
            error = run_hook(hook, state)
            if error is not None:
                raise ContainerError("hook", error)


def run_hook(hook: Hook, state: bytes) -> str | None:
    """Run ``hook`` to its end with ``state`` on stdin; None on success, else one line.

    Its stdout and stderr go to one pipe whose tail the error line quotes.
    The hook gets a process group of its own, killed whole at the timeout.
    """
    in_r, in_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    exec_r, exec_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the hook: never returns
        try:
            os.setpgid(0, 0)
            os.dup2(in_r, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            os.execve(hook.path, hook.args, hook.env)
        except OSError as exc:
            os.write(exec_w, (exc.strerror or str(exc)).encode())
        finally:
            os._exit(127)
    for fd in (in_r, out_w, exec_w):
        os.close(fd)
    try:
        cannot = os.read(exec_r, 512).decode(errors="replace")  # EOF: execve succeeded
    finally:
        os.close(exec_r)
    if cannot:
        os.close(in_w)
        os.close(out_r)
        os.waitpid(pid, 0)
        return f"{hook.name}: cannot run: {cannot}"
    _feed(in_w, state)
    deadline = None if hook.timeout is None else time.monotonic() + hook.timeout
    output, status = _collect(out_r, pid, deadline)
    if status is None:
        return f"{hook.name}: timed out after {hook.timeout:g} s"
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return None
    said = " ".join(output.decode(errors="replace").split())[-_SHOWN:]
    why = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
    return f"{hook.name} failed: {why}" + (f": {said}" if said else "")


def _feed(fd: int, data: bytes) -> None:
    """Write the state and close; a hook that does not read it is no error (no SIGPIPE)."""
    previous = _signal.signal(_signal.SIGPIPE, _signal.SIG_IGN)
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass
    finally:
        os.close(fd)
        _signal.signal(_signal.SIGPIPE, previous)


def _collect(fd: int, pid: int, deadline: float | None) -> tuple[bytes, int | None]:
    """The hook's output (its tail) and wait status; None for the status when the deadline
    passed first (the hook's group is then killed and reaped)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    kept = b""
    try:
        while True:  # until EOF: the hook (and whatever kept its output) is done writing
            wait = None if deadline is None else max(0.0, deadline - time.monotonic()) * 1000
            if not poller.poll(wait):
                _kill(pid)
                return kept, None
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            kept = (kept + chunk)[-4 * _SHOWN:]
    finally:
        os.close(fd)
    while True:  # it closed its output; it may still be running
        done, status = os.waitpid(pid, 0 if deadline is None else os.WNOHANG)
        if done:
            return kept, status
        if deadline is not None and time.monotonic() >= deadline:
            _kill(pid)
            return kept, None
        time.sleep(0.01)


def _kill(pid: int) -> None:
    """Kill the hook's process group and reap the hook."""
    _kill_group(pid)
    os.waitpid(pid, 0)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, _SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
