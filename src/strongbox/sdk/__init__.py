"""sdk is strongbox's Python API for running untrusted code: ``strongbox.Sandbox``.

    import strongbox

    with strongbox.Sandbox.create(image="python.oci.tar") as sb:
        print(sb.run("python3 -c 'print(6 * 7)'").stdout)

:mod:`.sandbox` (create, connect, list, run, spawn, pause, resume, close), :mod:`.files`
(``sb.files``), :mod:`.session` (one process over the monitor's control socket),
:mod:`.spec` (the sandbox's config.json); ``strongbox.aio`` is the same API for asyncio.
See docs/sdk.md.
"""

from __future__ import annotations

from strongbox.sdk.files import FileInfo, Files
from strongbox.sdk.sandbox import Process, Sandbox, SandboxInfo
from strongbox.sdk.session import RunResult

__all__ = ["FileInfo", "Files", "Process", "RunResult", "Sandbox", "SandboxInfo"]
