"""Files is ``sb.files``: reading and writing the sandbox's file system from the host.

Every operation is one session with op ``file`` (:mod:`.session`); inside the guest a
helper forked by the agent does it in the container's root (:mod:`strongbox.agent.files`),
so it sees the sandbox's writes, needs nothing from the image, and resolves symlinks
inside the sandbox only. Data streams through the session's pipes: ``write`` of a file
object or ``upload`` of a host file never holds the whole file in memory, nor does
``download``. A failure is :class:`SandboxFileError` with the guest's errno.
"""

from __future__ import annotations

import errno as errnos
import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from strongbox.errors import SandboxError, SandboxFileError
from strongbox.sdk.session import Session

if TYPE_CHECKING:
    from strongbox.sdk.sandbox import Sandbox

#: How long one file operation may take before it is killed (a 1 GiB file over TCG fits).
FILE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class FileInfo:
    """One entry of the sandbox's file system (``lstat``: a symlink is itself)."""

    name: str
    path: str
    type: str  # "file", "dir", "symlink" or "other"
    size: int
    mode: int
    mtime: float

    @property
    def is_dir(self) -> bool:
        return self.type == "dir"


class Files:
    """The file system of one sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def _op(self, op: str, path: str, *, mode: int = 0o644, stdin: bytes | IO[bytes] | None
            = None, stdout_to: IO[bytes] | None = None) -> bytes:
        if not isinstance(path, str) or not path.startswith("/"):
            raise SandboxFileError(f"path {path!r}: expected an absolute path in the sandbox",
                                   errnos.EINVAL, str(path))
        session = Session(self._sandbox.socket_path,
                          {"op": "file", "file_op": op, "path": path, "mode": mode},
                          stdin=stdin, stdout_to=stdout_to)
        result = session.result(FILE_TIMEOUT_S, what=f"{op} {path}")
        if result.exit_code:
            line = result.stderr.decode(errors="replace").strip() or \
                errnos.errorcode.get(result.exit_code, "failed")
            raise SandboxFileError(f"sandbox {self._sandbox.id}: {op} {line}",
                                   result.exit_code, path)
        return result.stdout

    def write(self, path: str, data: bytes | str | IO[bytes], *, mode: int = 0o644) -> None:
        """Create or replace the file ``path`` (and missing parent directories) with ``data``
        (bytes, text as UTF-8, or a binary file object read to its end)."""
        self._op("write", path, mode=mode, stdin=data.encode() if isinstance(data, str)
                 else data)

    def read(self, path: str) -> bytes:
        """The whole content of the file ``path``."""
        return self._op("read", path)

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read(path).decode(encoding)

    def upload(self, local: str | Path, path: str, *, mode: int | None = None) -> None:
        """Stream the host file ``local`` to ``path`` (its permission bits unless ``mode``)."""
        source = Path(local)
        with source.open("rb") as f:
            self.write(path, f, mode=mode if mode is not None else source.stat().st_mode & 0o777)

    def download(self, path: str, local: str | Path) -> None:
        """Stream the file ``path`` into the host file ``local``."""
        with Path(local).open("wb") as f:
            self._op("read", path, stdout_to=f)

    def list(self, path: str = "/") -> list[FileInfo]:
        """The entries of the directory ``path``, by name."""
        return [_info(path, entry) for entry in _json(self._op("list", path), path)]

    def stat(self, path: str) -> FileInfo:
        entry = _json(self._op("stat", path), path)
        return _info(path.rsplit("/", 1)[0] or "/", entry, full=path)

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except SandboxFileError as exc:
            if exc.errno in (errnos.ENOENT, errnos.ENOTDIR):
                return False
            raise
        return True

    def remove(self, path: str) -> None:
        """Remove the file, symlink or directory (with everything in it) ``path``."""
        self._op("remove", path)

    def mkdir(self, path: str, *, mode: int = 0o755) -> None:
        """Create the directory ``path`` and its missing parents; fine if it exists."""
        self._op("mkdir", path, mode=mode)


def _json(data: bytes, path: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise SandboxError(f"{path}: the guest's answer is not JSON ({exc})") from exc


def _info(parent: str, entry: dict[str, Any], full: str | None = None) -> FileInfo:
    name = str(entry["name"])
    return FileInfo(name=name, path=full or f"{parent.rstrip('/')}/{name}",
                    type=str(entry["type"]), size=int(entry["size"]), mode=int(entry["mode"]),
                    mtime=float(entry["mtime"]))
