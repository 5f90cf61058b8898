"""Build drives the kernel and initrd builders and publishes the result.

One build at a time per build directory: two ``make`` runs in one kernel tree
corrupt each other's objects, so a second ``guest build`` (a test or a user
while the set-up builds) waits for the first and then finds its result cached.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongbox.guest.assets import Asset, AssetStore
from strongbox.guest.initrd import build_initrd
from strongbox.guest.kernel import build_kernel
from strongbox.guest.progress import Reporter


@dataclass(frozen=True)
class BuildResult:
    """What ``strongbox guest build`` did: the assets and which were rebuilt."""

    assets: dict[str, Asset]
    built: dict[str, bool]

    def to_json(self) -> dict[str, Any]:
        return {kind: {**a.to_json(), "rebuilt": self.built[kind]}
                for kind, a in self.assets.items()}


def build_guest(state_dir: Path, reporter: Reporter, jobs: int | None = None,
                build_dir: Path | None = None) -> BuildResult:
    """Build whatever is missing or stale, then point the runtime at it."""
    store = AssetStore(state_dir)
    store.ensure()
    work = build_dir or state_dir / "build"
    work.mkdir(parents=True, exist_ok=True)
    lock = os.open(work / ".build.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            reporter.phase("waiting for another guest build in this directory")
            fcntl.flock(lock, fcntl.LOCK_EX)
        kernel, kernel_built = build_kernel(store, work, reporter, jobs)
        initrd, initrd_built = build_initrd(store, work, reporter)
    finally:
        os.close(lock)
    assets = {"kernel": kernel, "initrd": initrd}
    if kernel_built or initrd_built or store.current() != assets:
        store.set_current(assets)
    return BuildResult(assets, {"kernel": kernel_built, "initrd": initrd_built})
