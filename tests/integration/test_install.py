"""`strongbox install` configures a real containerd, which then runs strongbox containers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.framework import cli
from tests.framework.containerd import IMAGE, RUNTIME, Containerd

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(shutil.which("containerd") is None, reason="containerd not installed"),
]


def test_containerd_configured_by_install_runs_a_container(tmp_path: Path,
                                                           guest_assets: dict[str, Path]) -> None:
    daemon = Containerd(tmp_path)
    # Turn the CRI plugin on: that is where install registers the runtime handler.
    config = daemon.config.read_text().replace('"io.containerd.grpc.v1.cri", ', "")
    daemon.config.write_text(config)
    original = daemon.config.read_bytes()
    cli.run("install", "--only", "containerd", "--containerd-config", daemon.config).check()
    installed = daemon.config.read_text()
    assert 'runtime_type = "io.containerd.strongbox.v2"' in installed
    dump = subprocess.run(["containerd", "--config", str(daemon.config), "config", "dump"],
                          capture_output=True, text=True, check=True).stdout
    assert "io.containerd.strongbox.v2" in dump  # containerd parsed our entry
    daemon.start()
    try:
        daemon.import_busybox()
        result = daemon.ctr("run", "--rm", "--runtime", RUNTIME, IMAGE, "inst1", "echo",
                            "installed")
        assert result.stdout == b"installed\n", result.stderr.decode()
    finally:
        daemon.stop()
    cli.run("install", "--uninstall", "--only", "containerd", "--containerd-config",
            daemon.config).check()
    assert daemon.config.read_bytes() == original
