"""Layout reads an OCI image from an image layout: a directory, or a tar of one (an archive).

What ``podman save --format oci-archive``, ``skopeo copy ... oci:DIR`` and
``ctr images export`` write: ``index.json`` (and ``oci-layout``) at the top, every
other document and layer a blob under ``blobs/<algorithm>/<hex>``, addressed by
its digest. The index names a manifest (perhaps through a nested index, one per
platform: linux/amd64 is taken); the manifest names the image config and the
layers, bottom first. Every blob read is checked against its digest, so a layout
cannot hand over other bytes than its index promised. This is where a registry
client would put what it pulled; no registry is reachable from here.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from strongbox.errors import StrongboxError

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
#: Index and manifest documents are small; a larger one is not one.
MAX_DOCUMENT = 4 << 20
PLATFORM = {"os": "linux", "architecture": "amd64"}


class ImageError(StrongboxError):
    """An image that cannot be used, naming the file or blob and why."""


@dataclass(frozen=True)
class Layer:
    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class Manifest:
    config: dict[str, Any]
    layers: tuple[Layer, ...]


class Blobs:
    """A layout's blobs, from a directory or from a tar archive of one."""

    def __init__(self, where: str, opener: Any) -> None:
        self.where, self._open = where, opener

    @contextmanager
    def open(self, digest: str) -> Iterator[IO[bytes]]:
        algorithm, _, hexdigest = digest.partition(":")
        if algorithm != "sha256" or len(hexdigest) != 64 or not all(
                c in "0123456789abcdef" for c in hexdigest):
            raise ImageError(f"{self.where}: digest {digest!r}: expected sha256:<64 hex>")
        with self._open(f"blobs/sha256/{hexdigest}") as f:
            yield f

    def document(self, digest: str) -> Any:
        """A JSON blob, checked against its digest."""
        with self.open(digest) as f:
            data = f.read(MAX_DOCUMENT + 1)
        if len(data) > MAX_DOCUMENT:
            raise ImageError(f"{self.where}: {digest} is larger than a document can be")
        check_digest(self.where, digest, hashlib.sha256(data).hexdigest())
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ImageError(f"{self.where}: {digest} is not JSON: {exc}") from None


def check_digest(where: str, digest: str, actual: str) -> None:
    if digest != f"sha256:{actual}":
        raise ImageError(f"{where}: blob {digest} holds other bytes (sha256:{actual})")


@contextmanager
def open_layout(path: Path) -> Iterator[tuple[Blobs, Any]]:
    """The layout at ``path`` (a directory or an archive): its blobs and its index."""
    if path.is_dir():
        def from_dir(name: str) -> IO[bytes]:
            try:
                fd = os.open(path / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as exc:
                raise ImageError(f"{path}: {name}: {exc.strerror}") from None
            return os.fdopen(fd, "rb")

        yield Blobs(str(path), from_dir), _index(path, from_dir)
        return
    try:
        archive = tarfile.open(path, "r:*")  # noqa: SIM115 (closed by the with below)
    except (OSError, tarfile.TarError) as exc:
        raise ImageError(f"{path}: not an image layout directory nor a tar of one ({exc})"
                         ) from None
    with archive:
        members = {m.name.removeprefix("./"): m for m in archive.getmembers() if m.isfile()}

        @contextmanager
        def from_tar(name: str) -> Iterator[IO[bytes]]:
            member = members.get(name)
            f = archive.extractfile(member) if member is not None else None
            if f is None:
                raise ImageError(f"{path}: {name}: not in the archive")
            with f:
                yield f

        yield Blobs(str(path), from_tar), _index(path, from_tar)


def _index(path: Path, opener: Any) -> Any:
    try:
        with opener("index.json") as f:
            return json.loads(f.read(MAX_DOCUMENT))
    except ValueError as exc:
        raise ImageError(f"{path}: index.json is not JSON: {exc}") from None


def _descriptors(where: str, document: Any, field: str) -> list[dict[str, Any]]:
    found = document.get(field) if isinstance(document, dict) else None
    if not isinstance(found, list) or not all(isinstance(d, dict) and isinstance(
            d.get("digest"), str) for d in found):
        raise ImageError(f"{where}: {field}: expected a list of descriptors")
    return found


def manifest(blobs: Blobs, index: Any, name: str | None = None) -> Manifest:
    """The linux/amd64 image the index names (the one tagged ``name``, if given)."""
    candidates = _descriptors(f"{blobs.where}: index.json", index, "manifests")
    for _ in range(4):  # index -> (platform index) -> manifest
        if name is not None:
            tagged = [d for d in candidates if (d.get("annotations") or {}).get(
                "org.opencontainers.image.ref.name") in (name, name.rpartition(":")[2])]
            candidates = tagged or candidates
        chosen = _platform(blobs.where, candidates)
        document = blobs.document(chosen["digest"])
        if chosen.get("mediaType") in INDEX_TYPES or document.get("mediaType") in INDEX_TYPES:
            candidates, name = _descriptors(blobs.where, document, "manifests"), None
            continue
        config = blobs.document(_descriptors(blobs.where, {"c": [document.get("config")]},
                                             "c")[0]["digest"])
        layers = tuple(Layer(d["digest"], str(d.get("mediaType", "")), int(d.get("size", 0)))
                       for d in _descriptors(blobs.where, document, "layers"))
        if not isinstance(config, dict):
            raise ImageError(f"{blobs.where}: the image config is not an object")
        return Manifest(config, layers)
    raise ImageError(f"{blobs.where}: indexes nest too deep")


def _platform(where: str, candidates: list[dict[str, Any]]) -> dict[str, Any]:
    if not candidates:
        raise ImageError(f"{where}: the index names no image")
    if len(candidates) == 1:
        return candidates[0]
    for d in candidates:
        platform = d.get("platform") or {}
        if all(platform.get(k) == v for k, v in PLATFORM.items()):
            return d
    raise ImageError(f"{where}: {len(candidates)} images and none for linux/amd64; name one")
