"""Atomicfile replaces a file so that readers see the old content or the new, never half.

State records, pid files, shim addresses, template descriptions and the guest
asset index are all read by other processes while they may be rewritten; a
crash (or a full disk) in the middle of a write must leave the previous
version in place. The new content goes to a temporary file in the same
directory, is flushed to disk, and is renamed over the old name: rename(2)
within one file system is atomic.

Host side only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` (file mode ``mode``), atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
