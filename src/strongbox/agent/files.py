"""Files: the SDK's file operations, done inside a container's root by a forked helper.

``sb.files.write/read/list/remove`` must see the container's own file system (its
overlay, its mounts) and must not be steered out of it by a symlink the container's
code planted. The helper is a fork of the agent, not a program from the image (an
image may have no ``cat``): it joins the container's cgroup (a large write is charged
to the container), ``chroot``s to the init's root (``/proc/<pid>/root``, so every
path, symlinks included, resolves inside the container's mount tree), waits at the
same start barrier as an exec and then does one operation.

It is carried like an exec process (:class:`.containers.GuestProcess`): its data
travels on its stdin (``write``) or stdout (``read``, and ``list``/``stat`` as JSON),
any failure is one line on stderr, and its exit code is the failure's errno (0 when
it worked), so the host can tell "no such file" from "is a directory" without
parsing text. Large files stream through the process pipes at the pumps' pace.
"""

from __future__ import annotations

import errno
import json
import os
import stat as st

from strongbox.container.launcher import Launched
from strongbox.container.sync import START

#: The operations, each with the stdio it uses.
OPS = ("read", "write", "list", "stat", "remove", "mkdir")
_CHUNK = 1 << 20
_KINDS = {st.S_IFREG: "file", st.S_IFDIR: "dir", st.S_IFLNK: "symlink"}


def launch(init_pid: int, cgroup: str | None, op: str, path: str, mode: int,
           stdio: tuple[int, int, int]) -> Launched:
    """Fork the helper for ``op`` on ``path``, waiting at its start barrier."""
    if op not in OPS:
        raise ValueError(f"unknown file operation {op!r} (expected one of {', '.join(OPS)})")
    if not path.startswith("/"):
        raise ValueError(f"path {path!r}: must be absolute")
    root = f"/proc/{init_pid}/root"
    start_r, start_w = os.pipe2(os.O_CLOEXEC)
    error_r, error_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code = 1
        try:
            for target, fd in enumerate(stdio):
                os.dup2(fd, target)
            os.dup2(start_r, 3)
            os.dup2(error_w, 4)
            os.closerange(5, 1 << 16)  # no other process's pipe stays open in here
            if cgroup:
                with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                    f.write("0")
            os.chroot(root)
            os.chdir("/")
            if os.read(3, 1) != START:
                os._exit(0)  # closed before start: do nothing
            os.close(4)  # "started": the host now waits for the exit code
            code = run(op, path, mode)
        except BaseException as exc:
            try:
                os.write(4, f"{path}: {getattr(exc, 'strerror', None) or exc}\n".encode())
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(start_r)
    os.close(error_w)
    return Launched(pid, error_r, start_w)


def run(op: str, path: str, mode: int) -> int:
    """Do ``op`` on ``path`` in the current root; the exit code (0, or an errno)."""
    try:
        if op == "read":
            _read(path)
        elif op == "write":
            _write(path, mode)
        elif op == "list":
            with os.scandir(path) as entries:
                items = [_describe(os.path.join(path, e.name), e.name) for e in entries]
            _out(json.dumps(sorted(items, key=lambda i: i["name"])).encode())
        elif op == "stat":
            _out(json.dumps(_describe(path, os.path.basename(path) or "/")).encode())
        elif op == "remove":
            _remove(path)
        else:
            os.makedirs(path, mode or 0o755, exist_ok=True)
    except OSError as exc:
        code = exc.errno or errno.EIO
        os.write(2, f"{path}: {exc.strerror or exc}\n".encode())
        return code if 0 < code < 256 else errno.EIO
    return 0


def _out(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]


def _read(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if st.S_ISDIR(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        while chunk := os.read(fd, _CHUNK):
            _out(chunk)
    finally:
        os.close(fd)


def _write(path: str, mode: int) -> None:
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, 0o755, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # the umask must not narrow what the caller asked for
        while chunk := os.read(0, _CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _describe(path: str, name: str) -> dict[str, object]:
    info = os.lstat(path)
    return {"name": name, "type": _KINDS.get(st.S_IFMT(info.st_mode), "other"),
            "size": info.st_size, "mode": st.S_IMODE(info.st_mode), "mtime": info.st_mtime}


def _remove(path: str) -> None:
    """A file, a symlink (not what it points to) or a directory with all it holds."""
    if not st.S_ISDIR(os.lstat(path).st_mode):
        os.unlink(path)
        return
    for _top, dirs, files, top_fd in os.fwalk(path, topdown=False, follow_symlinks=False):
        for name in files:
            os.unlink(name, dir_fd=top_fd)
        for name in dirs:
            if st.S_ISLNK(os.lstat(name, dir_fd=top_fd).st_mode):
                os.unlink(name, dir_fd=top_fd)
            else:
                os.rmdir(name, dir_fd=top_fd)
    os.rmdir(path)
