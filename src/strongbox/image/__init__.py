"""image turns a local OCI image (a layout directory or archive) into a root filesystem.

The SDK's ``Sandbox.create(image=...)`` starts from one (:mod:`.layout` reads and
checks the documents and blobs, :mod:`.unpack` applies the layers safely);
nothing is pulled: a registry client would write the same layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from strongbox.image.layout import ImageError, manifest, open_layout
from strongbox.image.unpack import image_config, unpack

__all__ = ["ImageError", "extract"]


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
