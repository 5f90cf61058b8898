"""Debug console: a shell in the guest, outside every container, relayed to a host tool.

Kata's ``debug_console_enabled``. With ``[agent] debug_console = true`` the owner
of a sandbox (the CLI's monitor or the shim: both serve :mod:`.ownersocket`) answers
``{"op": "console", "rows": R, "cols": C}`` by asking the agent for its debug shell
(``verbs.DEBUG_CONSOLE``: busybox ``sh`` on a terminal in the guest's own
namespaces) and relaying the connection's bytes to the shell's terminal and back
until either side ends. Off (the default), the answer is one error naming the
setting. The first answer line says which (``{"ok": true}`` or ``{"error": ...}``);
raw terminal bytes follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

from strongbox.errors import StrongboxError
from strongbox.protocol import verbs

if TYPE_CHECKING:
    from strongbox.sandbox.sandbox import Sandbox

OFF = ("the debug console is off: set [agent] debug_console = true in the configuration "
       "the sandbox was started with")


def _size(request: dict[str, Any], key: str, default: int) -> int:
    value = request.get(key, default)
    return value if isinstance(value, int) and 0 < value < 10000 else default


async def serve(sandbox: Sandbox, request: dict[str, Any], reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter) -> None:
    """Answer one console request on ``writer`` (see the module docstring)."""
    def answer(data: dict[str, Any]) -> None:
        writer.write(json.dumps(data).encode() + b"\n")

    vm = sandbox.vm
    if not sandbox.config.agent.debug_console:
        return answer({"error": OFF})
    if vm is None or vm.agent is None:
        return answer({"error": f"sandbox {sandbox.id} is not running"})
    io, stdio = vm.agent.open_process_streams(terminal=True, stdin=True)
    try:
        await vm.call(verbs.DEBUG_CONSOLE, {"stdio": stdio, "rows": _size(request, "rows", 24),
                                            "cols": _size(request, "cols", 80)})
    except StrongboxError as exc:
        vm.agent.close_process_streams(io)
        return answer({"error": f"debug console: {exc}"})
    answer({"ok": True})
    assert io.stdin is not None and io.stdout is not None
    shell_in, shell_out = io.stdin, io.stdout

    async def up() -> None:
        while data := await reader.read(65536):
            shell_in.write(data)
            await shell_in.drain()
        shell_in.close_write()

    async def down() -> None:
        while data := await shell_out.read():
            writer.write(data)
            await writer.drain()

    tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[1].done():  # the shell ended: nothing more to relay
            tasks[0].cancel()
        else:  # the tool went: the shell's input has ended, let its output finish
            with contextlib.suppress(asyncio.TimeoutError, StrongboxError, OSError):
                await asyncio.wait_for(tasks[1], 5.0)
    finally:
        for task in tasks:
            task.cancel()
        vm.agent.close_process_streams(io)
