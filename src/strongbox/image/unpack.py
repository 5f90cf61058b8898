"""Unpack applies an image's layers to a root filesystem directory, safely.

A layer is a tar (gzip'd or not) of changes: files to add or replace, and
whiteouts (``.wh.<name>`` deletes ``<name>`` from the layers below,
``.wh..wh..opq`` empties its directory). Layers come from images nobody
reviewed, so no member may reach outside the root: every path is walked one
component at a time from a descriptor of the root, never following a symlink
(``O_NOFOLLOW``, ``dir_fd``), and ``..`` is refused; symlinks are made as
they are (a container resolves them inside its own root later); a hard link
must name a file already unpacked inside the root; device nodes are skipped
(a container gets its ``/dev`` from the runtime). Owners, modes and times
are kept, as a container's tools expect. Each layer's bytes are checked
against its digest before any of it is written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import IO, Any

from strongbox.image.layout import Blobs, ImageError, Manifest, check_digest

WHITEOUT, OPAQUE = ".wh.", ".wh..wh..opq"


def _parts(name: str) -> list[str]:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ImageError(f"layer member {name!r}: '..' is not allowed")
    return parts


def _walk(root_fd: int, parts: list[str], create: bool) -> int:
    """A descriptor of the directory ``parts`` under the root, no symlink followed."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=fd)
            os.close(fd)
            fd = nxt
        return fd
    except OSError:
        os.close(fd)
        raise


def _remove(parent: int, name: str) -> None:
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent)
        try:
            _empty(fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=parent)
    else:
        os.unlink(name, dir_fd=parent)


def _empty(fd: int) -> None:
    for entry in os.listdir(fd):
        _remove(fd, entry)


def _attributes(parent: int, name: str, member: tarfile.TarInfo) -> None:
    os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
    if not member.issym():
        os.chmod(name, member.mode & 0o7777, dir_fd=parent)
    os.utime(name, (member.mtime, member.mtime), dir_fd=parent, follow_symlinks=False)


def _apply_member(root_fd: int, tar: tarfile.TarFile, member: tarfile.TarInfo,
                  skipped: list[str]) -> None:
    parts = _parts(member.name)
    if not parts:
        return  # the root itself
    *dirs, name = parts
    parent = _walk(root_fd, dirs, create=True)
    try:
        if name == OPAQUE:
            _empty(parent)
            return
        if name.startswith(WHITEOUT):
            _remove(parent, name.removeprefix(WHITEOUT))
            return
        if member.ischr() or member.isblk():
            skipped.append(member.name)
            return
        try:
            now = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
        except FileNotFoundError:
            now = 0
        existing_dir = member.isdir() and stat.S_ISDIR(now)
        if not existing_dir:
            _remove(parent, name)
        if member.isdir():
            if not existing_dir:
                os.mkdir(name, 0o700, dir_fd=parent)
        elif member.issym():
            os.symlink(member.linkname, name, dir_fd=parent)
        elif member.islnk():
            *link_dirs, link_name = _parts(member.linkname) or [""]
            source = _walk(root_fd, link_dirs, create=False)
            try:
                os.link(link_name, name, src_dir_fd=source, dst_dir_fd=parent,
                        follow_symlinks=False)
            finally:
                os.close(source)
            return  # a hard link shares its file's attributes
        elif member.isfifo():
            os.mkfifo(name, 0o600, dir_fd=parent)
        elif member.isreg():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=parent)
            with os.fdopen(fd, "wb") as out:
                data = tar.extractfile(member)
                if data is not None:
                    shutil.copyfileobj(data, out, 1 << 20)
        else:
            skipped.append(member.name)
            return
        _attributes(parent, name, member)
    finally:
        os.close(parent)


def apply_layer(root: Path, stream: IO[bytes], where: str) -> list[str]:
    """Apply one layer's tar stream to ``root``; the members skipped (device nodes)."""
    skipped: list[str] = []
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                try:
                    _apply_member(root_fd, tar, member, skipped)
                except OSError as exc:
                    raise ImageError(f"{where}: {member.name}: {exc.strerror}") from None
    except tarfile.TarError as exc:
        raise ImageError(f"{where}: not a tar layer ({exc})") from None
    finally:
        os.close(root_fd)
    return skipped


def unpack(blobs: Blobs, image: Manifest, root: Path) -> list[str]:
    """Apply every layer of ``image``, bottom first, to the empty directory ``root``; each
    layer's digest is checked before anything of it is written."""
    for layer in image.layers:
        if "zstd" in layer.media_type:
            raise ImageError(f"{blobs.where}: layer {layer.digest} is zstd-compressed; "
                             "only gzip and uncompressed layers can be read here")
    skipped: list[str] = []
    for layer in image.layers:
        where = f"{blobs.where}: layer {layer.digest}"
        with blobs.open(layer.digest) as raw:
            sha = hashlib.sha256()
            while chunk := raw.read(1 << 20):
                sha.update(chunk)
        check_digest(where, layer.digest, sha.hexdigest())
        with blobs.open(layer.digest) as raw:
            skipped += apply_layer(root, raw, where)
    return skipped


def image_config(image: Manifest) -> dict[str, Any]:
    """The run defaults the image names (``config``: Env, Cmd, Entrypoint, WorkingDir,
    User), empty where it names none."""
    config = image.config.get("config")
    return config if isinstance(config, dict) else {}
