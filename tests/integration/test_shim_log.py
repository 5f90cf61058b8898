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
