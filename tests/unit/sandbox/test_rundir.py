"""Run directories: owned by a live process, collected once the owner dies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from strongbox.errors import StateDirError
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
