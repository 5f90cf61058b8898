"""``strongbox debug log``: the guest console of a container's VM, through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.framework import cli
from tests.framework.bundle import make_bundle

pytestmark = pytest.mark.vm


def test_debug_log_prints_the_guest_console(root: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[hypervisor.qemu]\nenable_debug = true\n")  # the full kernel log
    sb = ["--config", config, "--root", root]
    bundle = make_bundle(tmp_path / "b", ["sleep", "600"])
    started = cli.run_to_files(cli.strongbox_argv(*sb, "run", "-d", "--bundle", bundle, "dbg"),
                               tmp_path / "out", tmp_path / "err")
    assert started.returncode == 0, started.stderr
    try:
        log = cli.run(*sb, "debug", "log", "dbg")
        assert log.returncode == 0, log.stderr
        assert "Run /init as init process" in log.stdout, log.stdout[-2000:]  # (capped: the tail)
        cli.assert_one_line_error(cli.run(*sb, "debug", "log", "nope"),
                                  "container nope does not exist")
    finally:
        cli.run(*sb, "delete", "--force", "dbg")
