"""Unpacking OCI images built here (one layer from the fixtures' builder, several by hand),
and layers made to escape the root (the SDK's sandboxes start from such images)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from strongbox.image import ImageError, extract
from tests.framework.images import oci_archive


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644
           ) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.uid, info.gid = kind, link, mode, 1000, 1000
    return info


def _layout(tmp: Path, layers: list[bytes], cmd: list[str] | None = None) -> Path:
    """An OCI layout directory of ``layers`` (bottom first; the first gzip'd)."""
    blobs = tmp / "layout" / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def blob(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    described = []
    for n, layer in enumerate(layers):
        data = gzip.compress(layer) if n == 0 else layer
        kind = "tar+gzip" if n == 0 else "tar"
        described.append({"mediaType": f"application/vnd.oci.image.layer.v1.{kind}",
                          **blob(data)})
    config = blob(json.dumps({"architecture": "amd64", "os": "linux",
                              "config": {"Cmd": cmd or ["sh"], "Env": ["A=1"]}}).encode())
    manifest = blob(json.dumps({"schemaVersion": 2, "config": config,
                                "layers": described}).encode())
    (tmp / "layout" / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest}]}))
    return tmp / "layout"


def test_the_fixtures_archive_unpacks_with_its_config(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "tool").write_text("#!/bin/sh\n")
    os.chmod(src / "bin" / "tool", 0o755)
    os.symlink("/bin/tool", src / "link")
    archive = oci_archive(src, tmp_path / "image.tar", cmd=["tool"])
    config = extract(archive, tmp_path / "root")
    assert config["Cmd"] == ["tool"]
    root = tmp_path / "root"
    assert (root / "bin" / "tool").read_text() == "#!/bin/sh\n"
    assert os.stat(root / "bin" / "tool").st_mode & 0o777 == 0o755
    assert os.readlink(root / "link") == "/bin/tool"  # as it was: resolved in the container


def test_layers_apply_in_order_with_whiteouts_and_hard_links(tmp_path: Path) -> None:
    bottom = _tar((_entry("etc", tarfile.DIRTYPE, mode=0o755), None),
                  (_entry("etc/a"), b"a"), (_entry("etc/b"), b"b"),
                  (_entry("etc/hard", tarfile.LNKTYPE, link="etc/a"), None),
                  (_entry("opaque", tarfile.DIRTYPE, mode=0o755), None),
                  (_entry("opaque/old"), b"old"), (_entry("dev0", tarfile.CHRTYPE), None))
    top = _tar((_entry("etc/.wh.b"), b""), (_entry("opaque/.wh..wh..opq"), b""),
               (_entry("opaque/new"), b"new"), (_entry("etc/a"), b"a2"))
    config = extract(_layout(tmp_path, [bottom, top]), tmp_path / "root")
    root = tmp_path / "root"
    assert config["Env"] == ["A=1"]
    assert sorted(os.listdir(root / "etc")) == ["a", "hard"]  # b whited out
    assert (root / "etc" / "a").read_text() == "a2" and (root / "etc" / "hard").read_text() \
        == "a"  # replaced a is a new file; the link kept the old one
    assert os.listdir(root / "opaque") == ["new"]
    assert not (root / "dev0").exists()  # device nodes are the runtime's
    assert os.stat(root / "etc" / "a").st_uid == 1000


@pytest.mark.parametrize("members", [
    [(_entry("../escape"), b"x")],
    [(_entry("evil", tarfile.SYMTYPE, link="/"), None), (_entry("evil/tmp/planted"), b"x")],
    [(_entry("l", tarfile.LNKTYPE, link="../../etc/passwd"), None)],
], ids=["dotdot", "through-a-symlink", "hard-link-out"])
def test_a_layer_cannot_write_outside_the_root(tmp_path: Path,
                                               members: list[tuple[tarfile.TarInfo, bytes]]
                                               ) -> None:
    layout = _layout(tmp_path, [_tar(*members)])
    with pytest.raises(ImageError):
        extract(layout, tmp_path / "root")
    assert not (tmp_path / "root").exists()  # removed again
    assert not Path("/tmp/planted").exists() and not (tmp_path / "escape").exists()


def test_a_blob_with_other_bytes_is_refused(tmp_path: Path) -> None:
    layout = _layout(tmp_path, [_tar((_entry("f"), b"ok"))])
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:])
                          .read_text())
    layer = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]
    layer.write_bytes(gzip.compress(_tar((_entry("f"), b"evil"))))
    with pytest.raises(ImageError, match="holds other bytes"):
        extract(layout, tmp_path / "root")
    assert not (tmp_path / "root").exists()


def test_not_an_image_is_one_error_naming_it(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_text("nope")
    with pytest.raises(ImageError, match=r"junk: not an image layout directory nor a tar"):
        extract(junk, tmp_path / "root")
