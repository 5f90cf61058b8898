"""Hooks run a container's OCI hooks (config.md "POSIX-platform Hooks") where a VM allows.

Where each kind runs, and why:

* ``prestart`` (deprecated), ``createRuntime``, ``createContainer``: on the
  host, in the runtime's namespaces, once the VM is up and the container has
  been created in it (stopped at its start barrier), before ``create``
  returns. The state's ``pid`` is a host process in the network namespace
  the sandbox runs in (``/proc/<pid>/ns/net`` is what Docker's
  ``libnetwork-setkey`` and site hooks configure): the VMM under the shim;
  the monitor under the CLI, which is the pid the CLI reports and lives in
  pid and mount namespaces of its own (``runtime/ownerns.py``: its hooks are
  given its host pid and run in the host's mount namespace, :class:`HookPlace`).
  A hook cannot see inside the guest: the container's own namespaces are the VM's.
* ``startContainer``: in the guest, by the container's init after pivot_root
  and just before the workload, in the container's namespaces and as its
  user, as runc does (``strongbox.container.hooks``): ``path`` is a program
  of the container's root, the state's status is ``created`` and its pid the
  init as the container sees it. A failure fails ``start`` like an exec that
  fails (the error names the hook and its status); poststop still runs.
* ``poststart``: on the host, after the container's process was let go.
* ``poststop``: on the host, once the container is deleted, also when its
  creation failed in a hook (the lifecycle's step 12).

Failure rules (runtime.md "Lifecycle"): a failing prestart, createRuntime or
createContainer hook fails the creation, naming the hook and its status, the
container is torn down and the poststop hooks run; a failing poststart or
poststop hook is a warning. Each hook gets the container's state (runtime.md
"State") on stdin, exactly its ``env``, its ``args`` (``args[0]`` as argv[0]),
and is killed when its ``timeout`` passes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from strongbox.errors import ContainerStartError
from strongbox.sandbox.agent_client import FOREVER

log = logging.getLogger("strongbox.sandbox")

#: The kinds that fail the creation, in the order runc runs them.
CREATING = ("prestart", "createRuntime", "createContainer")
_STDERR_SHOWN = 200


class HookFailed(ContainerStartError):
    """A prestart, createRuntime or createContainer hook failed: the creation failed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 1)


@dataclass(frozen=True)
class HookPlace:
    """Where host hooks run when the sandbox's owner stands for its containers (the CLI's
    monitor): the pid their state names and what their child does before exec."""

    #: The owner's host pid (it joins the sandbox's network namespace before any hook).
    pid: int
    #: In the hook's child, before exec: back to the host's mount namespace (and /proc).
    child_setup: Callable[[], None] | None = None


@dataclass
class ContainerHooks:
    """The hooks of one container and what their state says of it."""

    container_id: str
    bundle: str
    hooks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    place: HookPlace | None = None

    @classmethod
    def of(cls, container_id: str, spec: dict[str, Any], bundle: str,
           place: HookPlace | None = None) -> ContainerHooks:
        hooks = spec.get("hooks") or {}
        return cls(container_id, bundle, hooks, dict(spec.get("annotations") or {}), place)

    def state(self, status: str, pid: int) -> dict[str, Any]:
        """The state on a hook's stdin; ``pid`` is the VMM's unless the owner stands in."""
        if self.place is not None and pid:
            pid = self.place.pid
        return {"ociVersion": "1.0.2", "id": self.container_id, "status": status,
                "pid": pid, "bundle": self.bundle, "annotations": self.annotations}

    async def creating(self, pid: int) -> None:
        """The creation hooks, in order; the first failure raises :class:`HookFailed`."""
        for kind in CREATING:
            error = await self._run(kind, self.state("creating", pid))
            if error is not None:
                raise HookFailed(error)

    def start_timeout(self, base: float) -> float | None:
        """How long a start may take: ``base`` plus what the guest's startContainer hooks
        may (their timeouts; one without a timeout may take forever, as under runc)."""
        guest = self.hooks.get("startContainer") or []
        if not guest:
            return None
        if any(h.get("timeout") is None for h in guest):
            return FOREVER
        return base + sum(float(h["timeout"]) for h in guest)

    async def started(self, pid: int) -> None:
        await self._run("poststart", self.state("running", pid), warn=True)

    async def stopped(self, pid: int) -> None:
        await self._run("poststop", self.state("stopped", pid), warn=True)

    async def _run(self, kind: str, state: dict[str, Any], *, warn: bool = False) -> str | None:
        """Run every hook of ``kind``; the first failure's message (logged when ``warn``)."""
        stdin = json.dumps(state).encode()
        for index, hook in enumerate(self.hooks.get(kind) or []):
            error = await run_hook(hook, stdin, f"{kind} hook {index}",
                                   self.place.child_setup if self.place else None)
            if error is None:
                continue
            if not warn:
                return error
            log.warning("container %s: %s", self.container_id, error)
        return None


async def run_hook(hook: dict[str, Any], stdin: bytes, name: str,
                   child_setup: Callable[[], None] | None = None) -> str | None:
    """Run one hook to its end; None on success, else why it failed (one line)."""
    path = str(hook["path"])
    args = [str(a) for a in hook.get("args") or [path]]
    env = dict(str(e).split("=", 1) for e in hook.get("env") or [] if "=" in str(e))
    timeout = hook.get("timeout")
    what = f"{name} ({path})"
    try:
        proc = await asyncio.create_subprocess_exec(
            args[0], *args[1:], executable=path, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, preexec_fn=child_setup)
    except OSError as exc:
        return f"{what}: cannot run: {exc.strerror or exc}"
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        return f"{what}: timed out after {timeout} s"
    except BaseException:
        _kill_group(proc.pid)
        await proc.wait()
        raise
    code = proc.returncode or 0
    if code == 0:
        return None
    said = " ".join(stderr.decode(errors="replace").split())[-_STDERR_SHOWN:]
    status = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
    return f"{what} failed: {status}" + (f": {said}" if said else "")


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
