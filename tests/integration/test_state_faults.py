"""State on disk under faults, with the real CLI: a full root, broken records, races.

Issue 11's adversarial run found each of these; each test reproduces one:

* a root that fills up (a small tmpfs mounted as ``--root``): ``create`` must
  fail with one line and leave nothing, ``start`` must fail with one line and
  leave the container as its record says (created, not running);
* ``delete --force`` must clear an id whatever is, or is not, in its
  directory, stopping a monitor that still lives for it;
* a forced delete must not wait on output nobody reads;
* ``exec`` racing ``delete --force`` must end with one line, never a
  traceback;
* a ``--root`` that is a regular file is one line naming it, for every verb.

The tests without a VM come first; VM tests are marked.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.framework import cli
from tests.framework.bundle import make_bundle
from tests.framework.procs import pids_with_cmdline, qemu_pids, wait_until

LOOP = ["sh", "-c", "echo started; while true; do sleep 0.2; done"]


def leftovers(root: Path) -> list[str]:
    """Everything of containers and VMs under ``root`` (nothing, after a delete)."""
    return sorted(str(p.relative_to(root)) for sub in ("containers", "vms")
                  if (root / sub).is_dir() for p in (root / sub).iterdir())


# --- a --root that is not a directory (no VM) ----------------------------------------------

VERBS = [["list"], ["state", "c1"], ["delete", "-f", "c1"], ["delete", "c1"], ["kill", "c1"],
         ["start", "c1"], ["pause", "c1"], ["resume", "c1"], ["ps", "c1"],
         ["events", "--stats", "c1"], ["update", "--pids-limit", "5", "c1"],
         ["exec", "c1", "true"], ["create", "c1"], ["run", "c1"]]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle") / "b", LOOP, root__readonly=False)


@pytest.mark.parametrize("argv", VERBS, ids=[v[0] + ("-f" if "-f" in v else "") for v in VERBS])
def test_a_root_that_is_a_file_is_one_line_for_every_verb(tmp_path: Path, bundle: Path,
                                                          argv: list[str]) -> None:
    root = tmp_path / "root"
    root.write_text("not a directory")
    if argv[0] in ("create", "run"):
        argv = [argv[0], "--bundle", str(bundle), *argv[1:]]
    result = cli.run("--root", root, *argv, timeout=60)
    cli.assert_one_line_error(result, f"root {root}: not a directory")
    assert root.read_text() == "not a directory"


# --- delete --force of a broken record (no VM) ---------------------------------------------

BROKEN = {
    "empty-directory": None,
    "no-state-json": {"lock": ""},
    "corrupt": {"state.json": '{"version": 1, "id": "c1", "bun'},
    "json-list": {"state.json": "[1, 2]"},
    "pid-string": {"state.json": json.dumps({"version": 1, "id": "c1", "bundle": "/b",
                                             "rootfs": "/b/rootfs", "status": "running",
                                             "monitor_pid": "x", "monitor_start": 5})},
    "status-unknown": {"state.json": json.dumps({"version": 1, "id": "c1", "bundle": "/b",
                                                 "rootfs": "/b/rootfs", "status": "zombie"})},
}


@pytest.mark.parametrize("files", list(BROKEN.values()), ids=list(BROKEN))
def test_forced_delete_clears_each_broken_record_shape(root: Path, bundle: Path,
                                                       files: dict[str, str] | None) -> None:
    directory = root / "containers" / "c1"
    directory.mkdir(parents=True)
    for name, text in (files or {}).items():
        (directory / name).write_text(text)
    for argv in (["state", "c1"], ["delete", "c1"], ["kill", "c1"]):
        result = cli.run("--root", root, *argv, timeout=60)
        assert "Traceback" not in result.stderr, result.stderr
        if files is not None and "state.json" in files:
            cli.assert_one_line_error(result, "container c1")
    listed = cli.run("--root", root, "list", "-q", timeout=60).check()
    assert "Traceback" not in listed.stderr
    cli.run("--root", root, "delete", "--force", "c1", timeout=60).check()
    assert leftovers(root) == []
    cli.assert_one_line_error(cli.run("--root", root, "state", "c1"), "c1", "does not exist")


# --- the VM tests ----------------------------------------------------------------------------

class Runtime:
    """`strongbox` with a private root whose containers' stdio goes to files."""

    def __init__(self, root: Path, tmp: Path, bundle: Path) -> None:
        self.root, self.tmp, self.default_bundle = root, tmp, bundle
        self.ids: list[str] = []

    def __call__(self, *args: str | Path, **kwargs: object) -> cli.Result:
        return cli.run("--root", self.root, *args, **kwargs)  # type: ignore[arg-type]

    def create(self, cid: str, *extra: str, command: str = "create",
               bundle: Path | None = None) -> cli.Result:
        self.ids.append(cid)
        argv = cli.strongbox_argv("--root", self.root, command, "--bundle",
                                  bundle or self.default_bundle, *extra, cid)
        with (self.tmp / f"{cid}.out").open("wb") as out, \
                (self.tmp / f"{cid}.err").open("wb") as err:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                  timeout=120)
        return cli.Result(argv, proc.returncode, "", (self.tmp / f"{cid}.err").read_text())

    def output(self, cid: str) -> str:
        return (self.tmp / f"{cid}.out").read_text()

    def state(self, cid: str) -> dict[str, object]:
        data: dict[str, object] = self("state", cid).check().json()
        return data

    def cleanup(self) -> None:
        for cid in self.ids:
            self("delete", "--force", cid)


def assert_nothing_left(root: Path) -> None:
    """No record, no run directory, no QEMU, no monitor of this root."""
    assert wait_until(lambda: not qemu_pids(str(root)), 10), qemu_pids(str(root))
    assert wait_until(lambda: not pids_with_cmdline(str(root)), 10), \
        pids_with_cmdline(str(root))
    assert leftovers(root) == []


@pytest.fixture
def rt(no_leaks: Path, tmp_path: Path, guest_assets: dict[str, Path],
       bundle: Path) -> Iterator[Runtime]:
    runtime = Runtime(no_leaks, tmp_path, bundle)
    yield runtime
    runtime.cleanup()
    assert_nothing_left(no_leaks)


class SmallRoot:
    """A 2 MiB tmpfs mounted as a root, which a test fills and frees."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        """Write until ENOSPC: a page at a time, then a byte at a time (nothing more fits)."""
        for name, size in (("filler", 4096), ("filler2", 1)):
            fd = os.open(self.path / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
            finally:
                os.close(fd)

    def free(self) -> None:
        for name in ("filler", "filler2"):
            (self.path / name).unlink(missing_ok=True)


@pytest.fixture
def small_root(rt: Runtime) -> Iterator[SmallRoot]:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(rt.root)],
                   check=True)
    small = SmallRoot(rt.root)
    try:
        yield small
    finally:
        try:
            small.free()
            rt.cleanup()  # delete before the unmount (rt's own cleanup comes after it)
            assert_nothing_left(rt.root)
        finally:
            if subprocess.run(["umount", str(rt.root)]).returncode != 0:
                subprocess.run(["umount", "-l", str(rt.root)], check=True)


@pytest.mark.vm
def test_create_on_a_full_root_is_one_line_and_leaves_nothing(rt: Runtime,
                                                              small_root: SmallRoot) -> None:
    small_root.fill()
    result = rt.create("full")
    cli.assert_one_line_error(result, f"root {rt.root}", "No space left on device")
    assert leftovers(rt.root) == []
    assert not qemu_pids(str(rt.root))
    cli.assert_one_line_error(rt("state", "full"), "full", "does not exist")
    small_root.free()
    rt.create("full").check()  # the id was never taken
    assert rt.state("full")["status"] == "created"
    rt("delete", "full").check()
    assert_nothing_left(rt.root)


@pytest.mark.vm
def test_start_on_a_root_full_after_create_fails_cleanly(rt: Runtime,
                                                         small_root: SmallRoot) -> None:
    rt.create("later").check()
    small_root.fill()
    result = rt("start", "later")
    cli.assert_one_line_error(result, f"root {rt.root}", "No space left on device",
                              "left created")
    assert rt.state("later")["status"] == "created"  # the monitor and the record agree
    record = json.loads((rt.root / "containers" / "later" / "state.json").read_text())
    assert record["status"] == "created"
    time.sleep(1)
    assert "started" not in rt.output("later")  # the process was never let go
    small_root.free()
    rt("start", "later").check()
    assert wait_until(lambda: "started" in rt.output("later"), 30)
    assert rt.state("later")["status"] == "running"
    small_root.fill()
    rt("delete", "--force", "later").check()  # a full root does not stop a delete
    assert_nothing_left(rt.root)


@pytest.mark.vm
@pytest.mark.parametrize("damage", ["remove", "list", "pid-string"])
def test_forced_delete_stops_a_live_monitor_whose_record_is_broken(rt: Runtime,
                                                                   damage: str) -> None:
    rt.create("broken").check()
    rt("start", "broken").check()
    monitor = int(rt.state("broken")["pid"])  # type: ignore[call-overload]
    path = rt.root / "containers" / "broken" / "state.json"
    if damage == "remove":
        path.unlink()
    elif damage == "list":
        path.write_text("[]")
    else:
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "monitor_pid": "x"}))
    cli.assert_one_line_error(rt("state", "broken"), "container broken")
    started = time.monotonic()
    rt("delete", "--force", "broken").check()
    assert time.monotonic() - started < 15
    assert not Path(f"/proc/{monitor}").exists() or \
        ") Z " in Path(f"/proc/{monitor}/stat").read_text()
    assert_nothing_left(rt.root)


@pytest.mark.vm
@pytest.mark.parametrize("how", ["run-d", "create-start"])
def test_forced_delete_does_not_wait_for_output_nobody_reads(rt: Runtime, tmp_path: Path,
                                                             how: str) -> None:
    """The container floods a pipe that nobody reads; delete --force must not care."""
    flood = make_bundle(tmp_path / "flood", ["sh", "-c", "while true; do echo "
                                             "0123456789abcdef0123456789abcdef; done"],
                        root__readonly=False)
    read_end, write_end = os.pipe()
    try:
        argv = cli.strongbox_argv("--root", rt.root, "run" if how == "run-d" else "create",
                                  *(["--detach"] if how == "run-d" else []), "--bundle",
                                  flood, "flood")
        rt.ids.append("flood")
        with (tmp_path / "flood.err").open("wb") as err:
            subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=write_end, stderr=err,
                           timeout=120, check=True)
        if how == "create-start":
            rt("start", "flood").check()
        os.close(write_end)
        write_end = -1
        time.sleep(2)  # the pipe is full and the monitor's writer is blocked on it
        assert rt.state("flood")["status"] == "running"
        started = time.monotonic()
        rt("delete", "--force", "flood").check()
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, f"delete --force took {elapsed:.2f}s"
        assert_nothing_left(rt.root)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


@pytest.mark.vm
def test_exec_racing_a_forced_delete_ends_in_one_line(rt: Runtime) -> None:
    """Execs start before, during and after a forced delete: each ends well or in one line."""
    for round_ in range(3):
        cid = f"race{round_}"
        rt.create(cid, "--detach", command="run").check()
        execs, delete = [], None
        for n in range(10):
            execs.append(subprocess.Popen(
                cli.strongbox_argv("--root", rt.root, "exec", cid, "true"),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                text=True))
            if n == 3 + round_:
                delete = subprocess.Popen(cli.strongbox_argv("--root", rt.root, "delete",
                                                             "--force", cid),
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          text=True)
            time.sleep(0.03)
        assert delete is not None
        _, err = delete.communicate(timeout=60)
        assert delete.returncode == 0, err
        for proc in execs:
            _, err = proc.communicate(timeout=60)
            assert "Traceback" not in err, err
            lines = [ln for ln in err.splitlines() if "using TCG" not in ln and ln.strip()]
            assert len(lines) <= 1, err  # it ran, or was killed (137, silently), or one line
            if lines:
                assert proc.returncode != 0 and lines[0].startswith("strongbox: error: "), err
        assert_nothing_left(rt.root)
