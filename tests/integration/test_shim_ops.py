"""The shim's phase records reach containerd's own log (containerd at debug level runs
shims with -debug), as the CLI's reach its stderr (tests/integration/test_timeline.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.framework.containerd import IMAGE, RUNTIME, Containerd

pytestmark = pytest.mark.vm


def test_the_shim_logs_the_same_phases_to_containerds_log(tmp_path: Path,
                                                          guest_assets: dict[str, Path]) -> None:
    """containerd at debug level runs shims with -debug: the shim's phase records reach
    containerd's own log, as the CLI's reach its stderr."""
    daemon = Containerd(tmp_path, level="debug")
    daemon.start()
    try:
        daemon.import_busybox()
        run = daemon.ctr("run", "--rm", "--runtime", RUNTIME, IMAGE, "timedshim", "true")
        assert run.returncode == 0, run.stderr
    finally:
        daemon.stop()
    text = daemon.log.read_text(errors="replace")
    shim = [line for line in text.splitlines() if "strongbox-shim DEBUG" in line]
    phases = set(re.findall(r": phase (.+?) \d+\.\d{3}s", "\n".join(shim)))
    assert {"agent ready", "container created", "process started", "teardown"} <= phases, \
        "\n".join(shim[-30:])


def test_debug_log_and_console_of_a_shim_sandbox(tmp_path: Path, guest_assets: dict[str, Path],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The shim serves the same owner socket as the CLI's monitor: ``debug log`` and
    ``debug console`` reach a sandbox containerd started."""
    from tests.framework import cli
    from tests.framework.console import run_in_console

    config = tmp_path / "config.toml"
    config.write_text("[agent]\ndebug_console = true\n")
    monkeypatch.setenv("STRONGBOX_CONFIG", str(config))  # the shim's, through containerd
    (tmp_path / "ctrd").mkdir()
    daemon = Containerd(tmp_path / "ctrd")
    daemon.start()
    try:
        daemon.import_busybox()
        assert daemon.ctr("run", "-d", "--runtime", RUNTIME, IMAGE, "opsshim", "sleep",
                          "4343").returncode == 0
        log = cli.run("--root", daemon.sbroot, "debug", "log", "opsshim")
        assert log.returncode == 0, log.stderr
        seen, status = run_in_console("--root", daemon.sbroot, vm="opsshim",
                                      command="ps -o args")
        assert status == 0 and "sleep 4343" in seen, seen
    finally:
        daemon.ctr("task", "kill", "-s", "KILL", "opsshim")
        daemon.ctr("task", "delete", "-f", "opsshim")
        daemon.ctr("container", "delete", "opsshim")
        daemon.stop()
