"""Owner socket: host tools ask the process that owns a sandbox what its guest reports.

Only a sandbox's owner (the CLI's monitor, the shim) talks to the guest's agent,
so a tool that wants the guest's view (``strongbox metrics``) asks the owner,
through a unix socket in the VM's run directory (``owner.sock``: root only, like
the directory; found by listing run directories, no registration). The owner
serves it from the sandbox layer, so both front doors have it. One JSON request
line, one JSON answer line, then the connection closes:

* ``{"op": "console", "rows": R, "cols": C}``: the debug console, a shell in the
  guest (:mod:`.debugconsole`), bytes both ways after one answer line;
* ``{"op": "report"}``: the VM's size, how long the start took, the
  guest's memory (``guest_info``), one agent round trip, and each container's
  status, annotations and cgroup statistics (``stats_container``).

A wedged guest delays only its own answers (each agent call has the agent's
request timeout, and the tool keeps its own deadline); the owner's loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strongbox import status as sm
from strongbox.errors import StrongboxError
from strongbox.protocol import verbs

if TYPE_CHECKING:
    from strongbox.sandbox.sandbox import Sandbox

log = logging.getLogger("strongbox.sandbox")
#: In the run directory.
SOCKET = "owner.sock"
#: The guest's memory figures a report carries (``guest_info``'s meminfo keys).
GUEST_MEMORY = ("mem_total_kib", "mem_free_kib", "mem_available_kib")
#: A request line longer than this is not one.
MAX_REQUEST = 4096
#: Makes one report (:func:`report` of the sandbox served).
Reporter = Callable[[], Awaitable[dict[str, Any]]]
#: Serves one console request on the connection (:func:`.debugconsole.serve`).
Console = Callable[[dict[str, Any], asyncio.StreamReader, asyncio.StreamWriter],
                   Awaitable[None]]


async def report(sandbox: Sandbox) -> dict[str, Any]:
    """What ``{"op": "report"}`` answers (see the module docstring)."""
    vm = sandbox.vm
    if vm is None:
        raise StrongboxError(f"sandbox {sandbox.id} has no VM")
    started = time.monotonic()
    info = await vm.call(verbs.GUEST_INFO)
    rtt = time.monotonic() - started
    containers = []
    for cid, hosted in list(sandbox.containers.items()):
        stats = None
        if hosted.status in (sm.CREATED, sm.RUNNING, sm.PAUSED):
            with contextlib.suppress(StrongboxError):
                stats = await sandbox.stats_container(cid)
        containers.append({"id": cid, "status": str(hosted.status),
                           "annotations": hosted.annotations, "stats": stats})
    spec = vm.vmm.spec
    return {"sandbox": sandbox.id, "memory_mib": spec.memory_mib,
            "vcpus": spec.vcpus, "start_s": sandbox.start_s, "agent_rtt_s": rtt,
            "guest": {k: info.get(k) for k in GUEST_MEMORY}, "containers": containers}


@contextlib.contextmanager
def reachable(path: Path) -> Iterator[str]:
    """A name for the socket ``path`` that fits a unix socket address (108 bytes): the path
    itself when short, else through an fd of its directory (``/proc/self/fd/N/owner.sock``).
    Docker's client roots and deep test roots make run directories longer than that."""
    if len(os.fsencode(path)) < 100:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


class OwnerSocket:
    """The socket one sandbox's owner serves while the VM runs."""

    def __init__(self, reporter: Reporter, run_dir: Path, console: Console | None = None
                 ) -> None:
        self.reporter, self.console, self.path = reporter, console, run_dir / SOCKET
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen; a socket that cannot be made is a warning (the sandbox runs without)."""
        try:
            with reachable(self.path) as name:
                self._server = await asyncio.start_unix_server(self._serve, path=name)
        except OSError as exc:
            log.warning("%s: no owner socket (%s): no metrics for it", self.path, exc)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            request = json.loads(line[:MAX_REQUEST]) if line else {}
            op = request.get("op") if isinstance(request, dict) else None
            if op == "console" and self.console is not None:
                answer: dict[str, Any] = {}
                await self.console(request, reader, writer)
            elif op != "report":
                answer = {"error": "expected {\"op\": \"report\"} or {\"op\": \"console\"}"}
            else:
                answer = {"report": await self.reporter()}
        except (ValueError, StrongboxError) as exc:
            answer = {"error": str(exc)}
        except (OSError, asyncio.IncompleteReadError):
            answer = {}
        try:
            if answer:
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with contextlib.suppress(OSError):
            self.path.unlink()


async def ask(path: Path, timeout: float) -> dict[str, Any]:
    """A tool's side: the report of the sandbox whose owner serves ``path``; an owner that
    does not answer within ``timeout`` s is a TimeoutError, one that cannot an OSError."""
    async def exchange() -> dict[str, Any]:
        with reachable(path) as name:
            reader, writer = await asyncio.open_unix_connection(name, limit=1 << 22)
        try:
            writer.write(b'{"op": "report"}\n')
            await writer.drain()
            answer = json.loads(await reader.readline() or b"{}")
        finally:
            writer.close()
        if not isinstance(answer, dict) or not isinstance(answer.get("report"), dict):
            raise OSError(f"{path}: {answer.get('error') if isinstance(answer, dict) else answer}")
        return dict(answer["report"])

    return await asyncio.wait_for(exchange(), timeout)
