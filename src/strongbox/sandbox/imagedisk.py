"""Imagedisk: a root filesystem that is a file system image from strongbox's image cache.

The SDK unpacks an image once and also writes it as an ext4 image file
(:func:`strongbox.image.prepare`); a sandbox made from it names that file in the
annotation ``io.strongbox.rootfs-image`` and gets it as a read-only virtio-blk disk,
with its writes in a guest-memory overlay. No 9p share is mounted for it, and that
is the point: QEMU 7.2 refuses to migrate a VM whose guest has a 9p export mounted
("Migration is disabled when VirtFS export path ... is mounted"), so only a sandbox
rooted on a disk can be snapshotted, forked or checkpointed.

The annotation comes from whoever writes the container's spec, so the file must be
one strongbox made: a regular file inside ``<state dir>/images``, reached without a
symlink, owned by root and writable by nobody else. Anything else is one error
naming the annotation. QEMU gets a read-only descriptor; the file is never written.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongbox.errors import ConfigError

ANNOTATION = "io.strongbox.rootfs-image"
FSTYPE = "ext4"


@dataclass(frozen=True)
class ImageFile:
    """A checked file system image: what :class:`~.plan.GuestDisk` holds for it."""

    path: str
    fstype: str = FSTYPE

    @property
    def device(self) -> str:
        """What messages call it (a block device's field of the same name)."""
        return self.path

    def open(self) -> int:
        """A read-only descriptor for QEMU (it never opens a host path itself)."""
        try:
            return os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise ConfigError(f"annotation {ANNOTATION}: {self.path}: "
                              f"{exc.strerror or exc}") from exc


def from_spec(spec: dict[str, Any], images: Path, overlay: bool) -> ImageFile | None:
    """The image the spec's annotation names, checked; None without the annotation."""
    value = (spec.get("annotations") or {}).get(ANNOTATION)
    if value is None:
        return None
    where = f"annotation {ANNOTATION}"
    if not overlay:
        raise ConfigError(f"{where}: needs the overlay mode (the image is shared read-only)")
    path = Path(str(value))
    try:
        inside = path.is_absolute() and os.path.realpath(path) == str(path) and \
            path.is_relative_to(os.path.realpath(images))
        info = os.lstat(path) if inside else None
    except OSError as exc:
        raise ConfigError(f"{where}: {value}: {exc.strerror or exc}") from None
    if info is None:
        raise ConfigError(f"{where}: {value} is not a file of strongbox's image cache "
                          f"({images})")
    if not stat.S_ISREG(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        raise ConfigError(f"{where}: {value} must be a regular file owned by root and "
                          "writable by it alone")
    return ImageFile(str(path))
