"""Block devices for tests: a loop-backed ext4 image holding a busybox rootfs, mounted.

This machine has no device-mapper, so a loop device stands for a block snapshotter's
device. Everything made is undone on exit, whatever the test left (a mount stacked on
the image's, the loop device).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import TracebackType

from tests.framework.bundle import make_rootfs


class LoopImage:
    """``size_mib`` of ext4 at ``base/image.ext4`` on a loop device, mounted at ``mount``."""

    def __init__(self, base: Path, mount: Path, size_mib: int = 64) -> None:
        self.image, self.mount, self.size_mib = base / "image.ext4", mount, size_mib
        self.device = ""

    def __enter__(self) -> LoopImage:
        self.image.parent.mkdir(parents=True, exist_ok=True)
        with self.image.open("wb") as f:
            f.truncate(self.size_mib << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(self.image)], check=True)
        self.device = subprocess.run(["losetup", "-f", "--show", str(self.image)], check=True,
                                     capture_output=True, text=True).stdout.strip()
        self.mount.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", self.device, str(self.mount)], check=True)
        make_rootfs(self.mount)
        return self

    def mounted(self) -> bool:
        """The image is mounted at its place (by the host: the sandbox gave it back)."""
        found = subprocess.run(["findmnt", "-rn", "-o", "SOURCE", "--mountpoint",
                                str(self.mount)], capture_output=True, text=True).stdout
        return self.device in found.split()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for _ in range(4):  # whatever is stacked there, then the image itself
            if subprocess.run(["umount", str(self.mount)], capture_output=True).returncode:
                break
        if self.device:
            subprocess.run(["losetup", "-d", self.device], capture_output=True)
