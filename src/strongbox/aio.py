"""aio is the SDK for asyncio: ``strongbox.aio.Sandbox``, the same verbs as coroutines.

Every call runs the synchronous SDK (:mod:`strongbox.sdk`) in a worker thread
(``asyncio.to_thread``), so an event loop never blocks on a VM booting, a process
running or a file streaming. Output callbacks (``on_stdout``, ``on_stderr``) are called
in that worker thread as the output comes; to touch the loop from one, use
``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from strongbox.sdk import sandbox as sync
from strongbox.sdk.files import FileInfo, Files
from strongbox.sdk.session import Input, Output, RunResult

__all__ = ["AsyncFiles", "AsyncProcess", "RunResult", "Sandbox"]


class AsyncProcess:
    """A background process (:meth:`Sandbox.spawn`)."""

    def __init__(self, process: sync.Process) -> None:
        self._process = process

    @property
    def exec_id(self) -> str:
        return self._process.exec_id

    def kill(self, signum: int = 9) -> None:
        self._process.kill(signum)

    async def wait(self, timeout_s: float | None = None) -> RunResult:
        return await asyncio.to_thread(self._process.wait, timeout_s)


class AsyncFiles:
    """``sb.files`` as coroutines."""

    def __init__(self, files: Files) -> None:
        self._files = files

    async def write(self, path: str, data: bytes | str | IO[bytes], *, mode: int = 0o644
                    ) -> None:
        await asyncio.to_thread(self._files.write, path, data, mode=mode)

    async def read(self, path: str) -> bytes:
        return await asyncio.to_thread(self._files.read, path)

    async def upload(self, local: str | Path, path: str, *, mode: int | None = None) -> None:
        await asyncio.to_thread(self._files.upload, local, path, mode=mode)

    async def download(self, path: str, local: str | Path) -> None:
        await asyncio.to_thread(self._files.download, path, local)

    async def list(self, path: str = "/") -> list[FileInfo]:
        return await asyncio.to_thread(self._files.list, path)

    async def stat(self, path: str) -> FileInfo:
        return await asyncio.to_thread(self._files.stat, path)

    async def exists(self, path: str) -> bool:
        return await asyncio.to_thread(self._files.exists, path)

    async def remove(self, path: str) -> None:
        await asyncio.to_thread(self._files.remove, path)

    async def mkdir(self, path: str, *, mode: int = 0o755) -> None:
        await asyncio.to_thread(self._files.mkdir, path, mode=mode)


class Sandbox:
    """:class:`strongbox.Sandbox` for asyncio (``async with await Sandbox.create(...)``)."""

    def __init__(self, sandbox: sync.Sandbox) -> None:
        self.sync = sandbox
        self.files = AsyncFiles(sandbox.files)

    @property
    def id(self) -> str:
        return self.sync.id

    @classmethod
    async def create(cls, image: str | Path, **options: Any) -> Sandbox:
        """As :meth:`strongbox.Sandbox.create`, with the same keyword arguments."""
        return cls(await asyncio.to_thread(lambda: sync.Sandbox.create(image, **options)))

    @classmethod
    async def connect(cls, sandbox_id: str, *, root: str | Path | None = None) -> Sandbox:
        return cls(await asyncio.to_thread(sync.Sandbox.connect, sandbox_id, root=root))

    @staticmethod
    async def list(*, root: str | Path | None = None) -> list[sync.SandboxInfo]:
        return await asyncio.to_thread(sync.Sandbox.list, root=root)

    async def run(self, cmd: str | Sequence[str], *, stdin: Input | str = None,
                  env: dict[str, str] | None = None, cwd: str | None = None,
                  timeout_s: float | None = None, on_stdout: Output | None = None,
                  on_stderr: Output | None = None) -> RunResult:
        return await asyncio.to_thread(lambda: self.sync.run(
            cmd, stdin=stdin, env=env, cwd=cwd, timeout_s=timeout_s, on_stdout=on_stdout,
            on_stderr=on_stderr))

    async def spawn(self, cmd: str | Sequence[str], *, stdin: Input | str = None,
                    env: dict[str, str] | None = None, cwd: str | None = None,
                    timeout_s: float | None = None, on_stdout: Output | None = None,
                    on_stderr: Output | None = None) -> AsyncProcess:
        return AsyncProcess(await asyncio.to_thread(lambda: self.sync.spawn(
            cmd, stdin=stdin, env=env, cwd=cwd, timeout_s=timeout_s, on_stdout=on_stdout,
            on_stderr=on_stderr)))

    async def pause(self) -> None:
        await asyncio.to_thread(self.sync.pause)

    async def resume(self) -> None:
        await asyncio.to_thread(self.sync.resume)

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> Sandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
