"""Cpio writes the "newc" archives the kernel unpacks as its initramfs.

Written here rather than driven through cpio(1) so that the archive is
reproducible (fixed owners, modes and times, sorted entries) and can hold
device nodes such as /dev/console without root or mknod.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"


class CpioWriter:
    """Append entries to a newc archive; parents are added automatically."""

    def __init__(self, out: BinaryIO, mtime: int = 0) -> None:
        self._out = out
        self._mtime = mtime
        self._ino = 721
        self._seen: set[str] = {""}

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0),
               nlink: int = 1) -> None:
        encoded = name.encode() + b"\0"
        fields = (self._ino, mode, 0, 0, nlink, self._mtime, len(data), 0, 0, rdev[0], rdev[1],
                  len(encoded), 0)
        self._ino += 1
        header = _MAGIC + b"".join(b"%08X" % f for f in fields)
        self._out.write(header + encoded + b"\0" * ((4 - (len(header) + len(encoded)) % 4) % 4))
        self._out.write(data + b"\0" * ((4 - len(data) % 4) % 4))

    def _parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in self._seen:
                self._seen.add(parent)
                self._entry(parent, stat.S_IFDIR | 0o755, nlink=2)

    @staticmethod
    def _norm(path: str) -> str:
        return path.strip("/")

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        name = self._norm(path)
        if name in self._seen:
            return
        self._parents(name)
        self._seen.add(name)
        self._entry(name, stat.S_IFDIR | mode, nlink=2)

    def add_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        name = self._norm(path)
        self._parents(name)
        self._seen.add(name)
        self._entry(name, stat.S_IFREG | mode, data)

    def add_symlink(self, path: str, target: str) -> None:
        name = self._norm(path)
        self._parents(name)
        self._seen.add(name)
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def add_char_device(self, path: str, major: int, minor: int, mode: int = 0o600) -> None:
        name = self._norm(path)
        self._parents(name)
        self._seen.add(name)
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def add_tree(self, root: Path) -> None:
        """Add a staged directory tree (files, dirs, symlinks) in sorted order."""
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            if rel_dir != ".":
                self.add_dir(rel_dir, stat.S_IMODE(os.lstat(dirpath).st_mode))
            for entry in sorted(filenames + [d for d in dirnames
                                             if os.path.islink(os.path.join(dirpath, d))]):
                full = os.path.join(dirpath, entry)
                rel = os.path.normpath(os.path.join(rel_dir, entry))
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    self.add_symlink(rel, os.readlink(full))
                elif stat.S_ISREG(st.st_mode):
                    self.add_file(rel, Path(full).read_bytes(), stat.S_IMODE(st.st_mode))

    def close(self) -> None:
        self._entry(_TRAILER, 0, nlink=1)
        self._out.flush()
