"""Install registers strongbox with containerd, podman and docker, and takes it back out.

Each engine keeps its runtimes in a configuration file that people edit by
hand, so an edit must never reformat it: strongbox inserts a small marked
span of text and leaves every other byte alone, and ``--uninstall`` removes
exactly that span, giving back the original bytes (a file strongbox created
is deleted again). Nothing is re-serialized; each result is parsed
(``tomllib``, ``json``) and checked before anything is written.

The work is split the way a request flows:

- ``plan``        options -> one :class:`Change` per file (reads, never writes)
- ``containerd``, ``podman``, ``docker``   one engine each, sharing the
  :class:`~strongbox.install.target.ConfigTarget` shape
- ``textedit``    marked blocks and lines in TOML files
- ``jsonedit``    a small JSON scanner that finds where to insert
- ``files``       atomic writes and diffs; :func:`apply` here uses them
- ``kubernetes``  the RuntimeClass manifest

Errors, all printed as one line naming the file::

    StrongboxError
     └── InstallError                 a file cannot be read or written
          ├── ConfigFileError         a file is not valid, or the edit would break it
          └── UnmanagedEntryError     a strongbox runtime exists that strongbox did not add
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from strongbox.errors import StrongboxError
from strongbox.install import files as files

RUNTIME_NAME = "strongbox"
"""The name every engine knows strongbox by (and the Kubernetes RuntimeClass handler)."""


class InstallError(StrongboxError):
    """A configuration file could not be read or written; ``path`` names it."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class ConfigFileError(InstallError):
    """The file is not valid (TOML, JSON, UTF-8), or editing it would make it invalid.

    Raised before anything is written, so the file is untouched.
    """


class UnmanagedEntryError(InstallError):
    """A ``strongbox`` runtime is configured, but not by ``strongbox install``.

    Adding a second one would duplicate a key; replacing it would lose
    someone's edit. The user decides.
    """


@dataclass(frozen=True)
class Change:
    """What installing or uninstalling does to one file.

    ``before``/``after`` are the whole file's bytes, ``None`` when the file
    does not (or will no longer) exist. ``message`` is the line the user sees.
    """

    path: Path
    before: bytes | None
    after: bytes | None
    message: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def read(path: Path) -> bytes | None:
    """The file's bytes, or ``None`` if it does not exist."""
    try:
        return files.read_bytes(path)
    except OSError as exc:
        raise InstallError(path, f"cannot read: {exc.strerror or exc}") from exc


def apply(changes: Sequence[Change], dry_run: bool = False, out: TextIO | None = None) -> None:
    """Write every change (atomically, one file at a time) and print one line per file.

    With ``dry_run`` nothing is written: each change is printed as a unified
    diff instead. Files are written in order; every change was computed and
    checked before the first write, so only an I/O error can stop halfway.
    """
    out = out if out is not None else sys.stdout
    for change in changes:
        if dry_run:
            if change.changed:
                out.write(files.unified_diff(change.path, change.before, change.after))
            out.write(f"{change.message} (dry run: nothing written)\n")
            continue
        if change.changed:
            try:
                if change.after is None:
                    files.remove(change.path)
                else:
                    files.write_atomic(change.path, change.after)
            except OSError as exc:
                raise InstallError(change.path,
                                   f"cannot write: {exc.strerror or exc}") from exc
        out.write(change.message + "\n")
