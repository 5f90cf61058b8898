"""image turns a local OCI image (a layout directory or archive) into a root filesystem.

The SDK's ``Sandbox.create(image=...)`` starts from one (:mod:`.layout` reads and
checks the documents and blobs, :mod:`.unpack` applies the layers safely);
nothing is pulled: a registry client would write the same layout.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from strongbox.image.layout import ImageError, Manifest, manifest, open_layout
from strongbox.image.unpack import image_config, unpack

__all__ = ["ImageError", "extract", "prepare"]


def extract(path: Path, root: Path, name: str | None = None) -> dict[str, Any]:
    """Unpack the image at ``path`` (tagged ``name`` if it holds several) into the new
    directory ``root``; the image's run defaults (Env, Cmd, Entrypoint, WorkingDir,
    User). On failure ``root`` is removed again."""
    import shutil

    root.mkdir(mode=0o755)
    try:
        with open_layout(path) as (blobs, index):
            image = manifest(blobs, index, name)
            unpack(blobs, image, root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return image_config(image)


def prepare(path: Path, cache: Path, name: str | None = None) -> tuple[Path, dict[str, Any]]:
    """The root filesystem of the image at ``path`` in ``cache``, and its run defaults.

    Each image is unpacked once (its key is the config document and the layer digests)
    and then shared by every sandbox made from it: they share it read-only and keep
    their writes in guest memory, so nothing ever writes it. The unpack goes to a
    private directory renamed into place under the cache's lock, so a crash leaves
    no half-unpacked root another sandbox would take.
    """
    with open_layout(path) as (blobs, index):
        image = manifest(blobs, index, name)
        target = cache / _key(image)
        if not (target / "rootfs").is_dir():
            cache.mkdir(mode=0o700, parents=True, exist_ok=True)
            with _locked(cache / ".lock"):
                if not (target / "rootfs").is_dir():
                    work = cache / f".unpack-{os.getpid()}-{target.name[:12]}"
                    import shutil

                    shutil.rmtree(work, ignore_errors=True)
                    work.mkdir(mode=0o755)
                    try:
                        (work / "rootfs").mkdir(mode=0o755)
                        unpack(blobs, image, work / "rootfs")
                        os.rename(work, target)
                    except BaseException:
                        shutil.rmtree(work, ignore_errors=True)
                        raise
    return target / "rootfs", image_config(image)


def _key(image: Manifest) -> str:
    described = [image.config, [layer.digest for layer in image.layers]]
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
