"""Atomicfile replaces a file so that readers see the old content or the new, never half.

State records, pid files, shim addresses, template descriptions and the guest
asset index are all read by other processes while they may be rewritten; a
crash (or a full disk) in the middle of a write must leave the previous
version in place. The new content goes to a temporary file in the same
directory, is flushed to disk, and is renamed over the old name: rename(2)
within one file system is atomic. Whatever fails (ENOSPC at the write, the
fsync or the close; the directory removed under us), the temporary file is
removed and the OSError is raised for the caller to name in its own terms.

Host side only. ``state`` and ``list`` load this module without writing
anything, so ``tempfile`` (with ``random`` and ``shutil`` behind it) is
imported by the writer.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int = 0o600,
                 owner: tuple[int, int] | None = None) -> None:
    """Replace ``path`` with ``data`` (file mode ``mode``, and ``owner`` (uid, gid) when
    given), atomically; OSError on failure."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        try:
            os.fchmod(fd, mode)
            if owner is not None:
                os.fchown(fd, *owner)
            _write_all(fd, data)
            os.fsync(fd)  # a full disk is reported here at the latest, not after the rename
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    sync_directory(path.parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def sync_directory(directory: Path) -> None:
    """Make the rename itself durable; best effort (the new content is already whole)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
