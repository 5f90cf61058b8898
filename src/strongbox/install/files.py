"""Files: whole-file reads, atomic replacement, and diffs for ``--dry-run``.

An engine's configuration must never be seen half-written (containerd or
docker may be restarted at any moment), so a new version is written to a
temporary file in the same directory, flushed, given the old file's mode and
owner, and renamed over it. A symlinked file (common for
``/etc/containers``) is replaced at its target, so the link survives.

Plain OS errors escape from here; :func:`strongbox.install.apply` turns
them into errors that name the file.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from pathlib import Path

from strongbox.atomicfile import atomic_write, sync_directory

NEW_FILE_MODE = 0o644
"""Mode of a configuration file strongbox creates: engines and admins read it."""


def read_bytes(path: Path) -> bytes | None:
    """The file's bytes, or ``None`` if it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename, keeping its mode and owner.

    Missing parent directories are created (containerd does not ship
    ``/etc/containerd``).
    """
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        old = os.stat(target)
    except FileNotFoundError:
        atomic_write(target, data, NEW_FILE_MODE)
    else:
        atomic_write(target, data, old.st_mode & 0o7777, (old.st_uid, old.st_gid))


def remove(path: Path) -> None:
    """Delete a file strongbox created; its directory stays (it may hold others' files)."""
    target = Path(os.path.realpath(path))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)
    sync_directory(target.parent)


def unified_diff(path: Path, before: bytes | None, after: bytes | None) -> str:
    """A ``diff -u`` style text of the change; a missing side is ``/dev/null``.

    CRLF endings are shown as plain line ends (a terminal would mangle the
    CR), and a last line without a newline gets diff's usual marker.
    """
    def lines(data: bytes | None) -> list[str]:
        return data.decode("utf-8", "replace").splitlines(keepends=True) if data else []

    name = str(path)
    diff = difflib.unified_diff(lines(before), lines(after),
                                fromfile=name if before is not None else "/dev/null",
                                tofile=name if after is not None else "/dev/null")
    out = []
    for line in diff:
        if line.endswith("\r\n"):
            line = line[:-2] + "\n"
        elif not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        out.append(line)
    return "".join(out)
