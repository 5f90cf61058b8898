"""OCI image archives built from a local root filesystem (no registry).

An OCI image is three JSON documents and a layer tarball, addressed by
their SHA-256: the layer (a tar of the rootfs), the image config, the
manifest, and ``index.json``/``oci-layout`` at the top. ``podman load`` and
``ctr images import`` both read this ``oci-archive`` format; Docker 20.10
reads only ``docker save``'s older layout (:func:`docker_archive`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any


def _blob(tar: tarfile.TarFile, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return f"sha256:{digest}", len(data)


def _layer(rootfs: Path) -> tuple[bytes, str]:
    """gzip'd tar of ``rootfs`` and the diff id (sha256 of the uncompressed tar)."""
    uncompressed = _layer_tar(rootfs)
    diff_id = "sha256:" + hashlib.sha256(uncompressed).hexdigest()
    return gzip.compress(uncompressed, mtime=0), diff_id


def _layer_tar(rootfs: Path) -> bytes:
    """The uncompressed, reproducible tar of ``rootfs`` (owner root, mtime 0)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(rootfs.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(rootfs)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            if info.isreg():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return raw.getvalue()


def _image_config(diff_id: str, cmd: list[str] | None) -> dict[str, Any]:
    return {
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": cmd or ["sh"], "Env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "strongbox test fixture"}],
    }


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def oci_archive(rootfs: Path, out: Path, *, name: str = "localhost/busybox:latest",
                cmd: list[str] | None = None) -> Path:
    """Write an OCI image archive of ``rootfs`` to ``out``."""
    layer, diff_id = _layer(rootfs)
    config = _image_config(diff_id, cmd)
    with tarfile.open(out, "w") as tar:
        layer_digest, layer_size = _blob(tar, layer)
        config_digest, config_size = _blob(tar, json.dumps(config).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest, "size": layer_size}],
        }
        manifest_digest, manifest_size = _blob(tar, json.dumps(manifest).encode())
        index = {
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": manifest_digest, "size": manifest_size,
                           "platform": {"architecture": "amd64", "os": "linux"},
                           "annotations": {"org.opencontainers.image.ref.name": name,
                                           "io.containerd.image.name": name}}],
        }
        _add_file(tar, "index.json", json.dumps(index).encode())
        _add_file(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    return out


def docker_archive(rootfs: Path, out: Path, *, name: str = "localhost/busybox:latest",
                   cmd: list[str] | None = None) -> Path:
    """Write ``rootfs`` as a ``docker save`` archive to ``out``.

    Docker 20.10's ``docker load`` reads only this layout, not an OCI
    archive: ``manifest.json`` naming the config file and each layer's
    ``<id>/layer.tar`` (uncompressed, so its sha256 is the diff id), the
    config as ``<its sha256>.json``, and the legacy ``repositories`` map.
    """
    layer = _layer_tar(rootfs)
    layer_id = hashlib.sha256(layer).hexdigest()
    config = json.dumps(_image_config(f"sha256:{layer_id}", cmd)).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    repo, _, tag = name.rpartition(":")
    manifest = [{"Config": config_name, "RepoTags": [name],
                 "Layers": [f"{layer_id}/layer.tar"]}]
    with tarfile.open(out, "w") as tar:
        _add_file(tar, f"{layer_id}/VERSION", b"1.0")
        _add_file(tar, f"{layer_id}/json", json.dumps({"id": layer_id}).encode())
        _add_file(tar, f"{layer_id}/layer.tar", layer)
        _add_file(tar, config_name, config)
        _add_file(tar, "manifest.json", json.dumps(manifest).encode())
        _add_file(tar, "repositories", json.dumps({repo: {tag: layer_id}}).encode())
    return out
