"""Running containers through `strongbox run`, with bundles made per test."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.framework import cli
from tests.framework.bundle import make_bundle, read_spec, write_spec


class Bundles:
    """Makes busybox bundles under one temporary directory and runs them."""

    def __init__(self, base: Path, root: Path) -> None:
        self.base = base
        self.root = root
        self._count = 0

    def make(self, args: list[str], **changes: Any) -> Path:
        self._count += 1
        changes.setdefault("root__readonly", False)
        return make_bundle(self.base / f"bundle{self._count}", args, **changes)

    def edit(self, bundle: Path, **changes: Any) -> Path:
        from tests.framework.bundle import set_path

        spec = read_spec(bundle)
        for key, value in changes.items():
            set_path(spec, key.split("__"), value)
        write_spec(bundle, spec)
        return bundle

    def run(self, bundle: Path, *options: str, input: bytes | None = None,
            timeout: float = 240, container_id: str | None = None) -> cli.Result:
        self._count += 1
        cid = container_id or f"c{self._count}-{os.getpid()}"
        argv = cli.strongbox_argv("--root", self.root, "run", "--bundle", bundle, *options, cid)
        proc = subprocess.run(argv, input=input if input is not None else b"",
                              capture_output=True, timeout=timeout)
        return cli.Result(argv, proc.returncode, proc.stdout.decode(errors="replace"),
                          proc.stderr.decode(errors="replace"))

    def run_bytes(self, bundle: Path, input: bytes | None = None,
                  timeout: float = 240) -> subprocess.CompletedProcess[bytes]:
        self._count += 1
        argv = cli.strongbox_argv("--root", self.root, "run", "--bundle", bundle,
                                  f"c{self._count}-{os.getpid()}")
        return subprocess.run(argv, input=input if input is not None else b"",
                              capture_output=True, timeout=timeout)


def tree_digest(path: Path) -> str:
    """A hash of every name, mode, link target and file content below ``path``."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            st = full.lstat()
            digest.update(f"{full.relative_to(path)}:{st.st_mode}:{st.st_uid}:{st.st_gid}\n"
                          .encode())
            if full.is_symlink():
                digest.update(os.readlink(full).encode())
            elif full.is_file():
                digest.update(full.read_bytes())
    return digest.hexdigest()
