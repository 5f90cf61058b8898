"""Run directories: owned by a live process, collected once the owner dies."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from strongbox.errors import StateDirError
from strongbox.sandbox import rundir
from strongbox.sandbox.rundir import RunDir, collect_stale


def test_create_and_remove(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "vm1")
    assert run.path.is_dir()
    assert collect_stale(tmp_path) == []  # we hold the lock: not stale
    with pytest.raises(StateDirError, match="already exists"):
        RunDir.create(tmp_path, "vm1")
    run.remove()
    assert not run.path.exists()


def test_dead_owner_is_collected(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from strongbox.sandbox.rundir import RunDir; "
            "r = RunDir.create(Path(sys.argv[1]), 'orphan'); "
            "(r.path / 'console.log').write_text('x')")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    assert (tmp_path / "vms" / "orphan").is_dir()
    assert collect_stale(tmp_path) == ["orphan"]
    assert not (tmp_path / "vms" / "orphan").exists()


def test_unwritable_root(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateDirError, match="cannot create"):
        RunDir.create(blocker / "root", "vm")


# --- creation and collection never race (issue 11) ---------------------------------------

def _age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def _building(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "vms" / f"{rundir.BUILDING_PREFIX}{name}"
    path.mkdir(parents=True)
    return path


@pytest.mark.parametrize("hook", ["os.open", "fcntl.flock", "os.rename"])
def test_a_collection_at_any_instant_of_a_create_removes_nothing_of_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook: str) -> None:
    """Another command collects at the worst moment: between the steps of a create."""
    module_name, function_name = hook.split(".")
    module = getattr(rundir, module_name)
    real = getattr(module, function_name)
    collecting = False
    collections = 0

    def interleaved(*args: Any, **kwargs: Any) -> Any:
        nonlocal collecting, collections
        if not collecting:
            collecting = True
            try:
                collect_stale(tmp_path)  # other fds: the same as another process, for flock
                collections += 1
            finally:
                collecting = False
        return real(*args, **kwargs)

    (tmp_path / "vms").mkdir()
    monkeypatch.setattr(module, function_name, interleaved)
    run = RunDir.create(tmp_path, "vm1")
    monkeypatch.undo()
    assert collections > 0
    assert (run.path / rundir.LOCK).is_file()
    assert collect_stale(tmp_path) == []
    assert os.listdir(tmp_path / "vms") == ["vm1"]
    run.remove()
    assert os.listdir(tmp_path / "vms") == []


def test_a_young_building_directory_without_a_lock_is_live(tmp_path: Path) -> None:
    building = _building(tmp_path, "young")
    assert collect_stale(tmp_path) == []
    assert building.is_dir()


def test_an_old_building_directory_without_a_lock_was_abandoned(tmp_path: Path) -> None:
    building = _building(tmp_path, "old")
    (building / ".owner.lock.new").write_text("")
    _age(building, rundir.ABANDONED_AFTER + 5)
    assert collect_stale(tmp_path) == [building.name]
    assert not building.exists()


def test_a_building_directory_is_live_while_its_lock_is_held(tmp_path: Path) -> None:
    building = _building(tmp_path, "held")
    _age(building, rundir.ABANDONED_AFTER + 5)  # age does not matter once there is a lock
    fd = os.open(building / rundir.LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert collect_stale(tmp_path) == []
    finally:
        os.close(fd)  # the creator died
    assert collect_stale(tmp_path) == [building.name]


def test_a_named_directory_without_a_lock_is_finished_off(tmp_path: Path) -> None:
    relic = tmp_path / "vms" / "relic"
    relic.mkdir(parents=True)
    (relic / "console.log").write_text("x")
    assert collect_stale(tmp_path) == ["relic"]
    assert not relic.exists()


def test_create_leaves_no_building_directory(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "vm1")
    with pytest.raises(StateDirError, match="already exists"):
        RunDir.create(tmp_path, "vm1")
    assert os.listdir(tmp_path / "vms") == ["vm1"]
    run.remove()


def test_owner_pid_names_the_holder(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "vm1")
    try:
        assert rundir.owner_pid(tmp_path, "vm1") == os.getpid()
    finally:
        run.remove()
    assert rundir.owner_pid(tmp_path, "vm1") is None


STRESS_WORKER = """
import os, sys, time
from pathlib import Path
from strongbox.errors import StateDirError
from strongbox.sandbox.rundir import LOCK, RunDir, collect_stale

root, me, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])

def intact(run):
    return os.fstat(run._lock_fd).st_ino == os.stat(run.path / LOCK).st_ino

for i in range(rounds):
    if me.startswith("collector"):
        collect_stale(root)
        continue
    name = "shared" if i % 2 else f"{me}-{i % 3}"
    try:
        run = RunDir.create(root, name)
    except StateDirError as exc:
        if name == "shared" and "already exists" in str(exc):
            continue
        sys.exit(f"{me}: create {name}: {exc}")
    try:
        (run.path / "console.log").write_text(me)
        for _ in range(3):
            collect_stale(root)
            if not intact(run) or (run.path / "console.log").read_text() != me:
                sys.exit(f"{me}: {name} was removed or replaced while alive")
    except OSError as exc:
        sys.exit(f"{me}: {name} was removed while alive ({exc})")
    run.remove()
"""


def test_concurrent_creates_and_collections_never_remove_a_live_directory(
        tmp_path: Path) -> None:
    names = [f"w{n}" for n in range(4)] + [f"collector{n}" for n in range(2)]
    workers = [subprocess.Popen([sys.executable, "-c", STRESS_WORKER, str(tmp_path), name,
                                 "150"], stderr=subprocess.PIPE, text=True) for name in names]
    failures = []
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        if worker.returncode != 0:
            failures.append(err.strip().splitlines()[-1] if err.strip() else worker.returncode)
    assert not failures
    assert os.listdir(tmp_path / "vms") == []
