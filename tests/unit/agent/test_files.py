"""The guest's file helper (agent/files.py) run in place: each operation's data, and
its errno as the exit code (the chroot into the container is left to the VM tests)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from strongbox.agent import files


def _run(op: str, path: Path, mode: int = 0o644, stdin: bytes = b""
         ) -> tuple[int, bytes, bytes]:
    """Run one operation in a child with pipes for its stdio, as the agent would."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        for fd in (in_w, out_r, err_r):
            os.close(fd)
        os.dup2(in_r, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os._exit(files.run(op, str(path), mode))
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    os.write(in_w, stdin)
    os.close(in_w)
    with os.fdopen(out_r, "rb") as out, os.fdopen(err_r, "rb") as err:
        data, message = out.read(), err.read()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), data, message


def test_write_makes_parents_and_sets_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "file"
    assert _run("write", target, 0o640, b"hello")[0] == 0
    assert target.read_bytes() == b"hello"
    assert target.stat().st_mode & 0o777 == 0o640
    assert _run("read", target) == (0, b"hello", b"")


def test_list_and_stat_describe_entries_without_following_symlinks(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"12345")
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to("/nowhere")
    code, out, _ = _run("list", tmp_path)
    entries = {e["name"]: e for e in json.loads(out)}
    assert code == 0 and sorted(entries) == ["d", "f", "l"]
    assert (entries["f"]["type"], entries["f"]["size"]) == ("file", 5)
    assert entries["d"]["type"] == "dir" and entries["l"]["type"] == "symlink"
    assert json.loads(_run("stat", tmp_path / "f")[1])["name"] == "f"


def test_remove_takes_a_tree_but_not_what_its_symlinks_point_to(tmp_path: Path) -> None:
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious").write_text("x")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("y")
    (tree / "link").symlink_to(keep)
    assert _run("remove", tree)[0] == 0
    assert not tree.exists() and (keep / "precious").exists()


@pytest.mark.parametrize(("op", "name", "code"), [
    ("read", "missing", errno.ENOENT), ("read", ".", errno.EISDIR),
    ("list", "missing", errno.ENOENT), ("remove", "missing", errno.ENOENT),
])
def test_failures_exit_with_their_errno_and_say_which_path(tmp_path: Path, op: str, name: str,
                                                           code: int) -> None:
    path = tmp_path / name if name != "." else tmp_path
    got, _, message = _run(op, path)
    assert got == code
    assert str(path).encode() in message


def test_an_unknown_operation_or_a_relative_path_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown file operation"):
        files.launch(1, None, "chmod", "/x", 0, (0, 1, 2))
    with pytest.raises(ValueError, match="absolute"):
        files.launch(1, None, "read", "x", 0, (0, 1, 2))
