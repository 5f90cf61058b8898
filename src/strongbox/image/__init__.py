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
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from strongbox.image.layout import ImageError, Manifest, manifest, open_layout
from strongbox.image.unpack import image_config, unpack

__all__ = ["IMAGE_FILE", "ImageError", "extract", "prepare"]
#: The image's root filesystem as an ext4 image, beside its directory in the cache.
IMAGE_FILE = "rootfs.ext4"


def extract(path: Path, root: Path, name: str | None = None) -> dict[str, Any]:
    """Unpack the image at ``path`` (tagged ``name`` if it holds several) into the new
    directory ``root``; the image's run defaults (Env, Cmd, Entrypoint, WorkingDir,
    User). On failure ``root`` is removed again."""
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
    their writes in guest memory, so nothing ever writes it. Beside the directory lies
    the same tree as an ext4 image (:data:`IMAGE_FILE`, ``mkfs.ext4 -d``), which a
    sandbox takes as a read-only disk instead of a 9p share (what makes it migratable:
    sandbox/imagedisk.py). The unpack goes to a private directory renamed into place
    under the cache's lock, so a crash leaves no half-made image another sandbox
    would take.
    """
    with open_layout(path) as (blobs, index):
        image = manifest(blobs, index, name)
        target = cache / _key(image)
        if not (target / IMAGE_FILE).is_file():
            cache.mkdir(mode=0o700, parents=True, exist_ok=True)
            with _locked(cache / ".lock"):
                if (target / "rootfs").is_dir() and not (target / IMAGE_FILE).is_file():
                    made = target / f".{IMAGE_FILE}-{os.getpid()}"  # unpacked before images
                    try:                                             # were made: add it
                        _ext4(target / "rootfs", made)
                        os.rename(made, target / IMAGE_FILE)
                    finally:
                        made.unlink(missing_ok=True)
                if not (target / "rootfs").is_dir():
                    work = cache / f".unpack-{os.getpid()}-{target.name[:12]}"
                    shutil.rmtree(work, ignore_errors=True)
                    work.mkdir(mode=0o755)
                    try:
                        (work / "rootfs").mkdir(mode=0o755)
                        unpack(blobs, image, work / "rootfs")
                        _ext4(work / "rootfs", work / IMAGE_FILE)
                        os.rename(work, target)
                    except BaseException:
                        shutil.rmtree(work, ignore_errors=True)
                        raise
    return target / "rootfs", image_config(image)


def _ext4(tree: Path, out: Path) -> None:
    """``tree`` as an ext4 file system image in ``out`` (sparse: only data takes space)."""
    import subprocess

    used, count = 0, 0
    for top, dirs, files in os.walk(tree):
        for entry in (*dirs, *files):
            count += 1
            with contextlib.suppress(OSError):
                used += os.lstat(os.path.join(top, entry)).st_blocks * 512
    size_mib = (used * 5 // 4 + count * 4096) // (1 << 20) + 32
    with open(out, "wb") as f:
        f.truncate(size_mib << 20)
    result = subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-E", "root_owner=0:0",
         "-N", str(count + 1024), "-d", str(tree), str(out)],
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ImageError(f"mkfs.ext4 -d {tree}: {result.stderr.strip() or result.returncode}")
    os.chmod(out, 0o644)


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
