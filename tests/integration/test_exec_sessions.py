"""An exec session lasts as long as its process (issue 12: a CLI exec over 120 s failed
with a TimeoutError and lost its output, while the process went on in the guest)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.framework import cli
from tests.framework.bundle import make_bundle

pytestmark = pytest.mark.vm


@pytest.fixture
def running(no_leaks: Path, tmp_path: Path, guest_assets: dict[str, Path]) -> Iterator[Path]:
    argv = cli.strongbox_argv("--root", no_leaks, "run", "-d", "--bundle",
                              make_bundle(tmp_path / "b", ["sleep", "100000"]), "long")
    cli.run_to_files(argv, tmp_path / "out", tmp_path / "err").check()
    yield no_leaks
    cli.run("--root", no_leaks, "delete", "--force", "long")


def test_an_exec_of_150_seconds_keeps_all_its_output(running: Path) -> None:
    script = "for i in $(seq 1 15); do echo tick-$i; sleep 10; done; echo done; exit 3"
    started = time.monotonic()
    result = cli.run("--root", running, "exec", "long", "sh", "-c", script, timeout=300)
    assert time.monotonic() - started >= 150
    assert result.returncode == 3, result.stderr
    assert result.stdout.split() == [f"tick-{i}" for i in range(1, 16)] + ["done"]
    assert "Traceback" not in result.stderr
