"""``strongbox debug log``: the guest console of a container's VM, through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.framework import cli
from tests.framework.console import run_in_console, start_detached

pytestmark = pytest.mark.vm


def test_debug_log_prints_the_guest_console(root: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[hypervisor.qemu]\nenable_debug = true\n")  # the full kernel log
    sb = ["--config", config, "--root", root]
    start_detached(*sb, tmp=tmp_path, cid="dbg", args=["sleep", "600"])
    try:
        log = cli.run(*sb, "debug", "log", "dbg")
        assert log.returncode == 0, log.stderr
        assert "Run /init as init process" in log.stdout, log.stdout[-2000:]  # (capped: the tail)
        cli.assert_one_line_error(cli.run(*sb, "debug", "log", "nope"),
                                  "container nope does not exist")
    finally:
        cli.run(*sb, "delete", "--force", "dbg")


def test_debug_console_is_a_shell_in_the_guest_outside_the_container(root: Path,
                                                                     tmp_path: Path) -> None:
    """Through a pseudo-terminal (pexpect): the shell sees the guest's processes, the
    agent as PID 1 and the container's among them; ``exit`` ends it with status 0."""
    config = tmp_path / "config.toml"
    config.write_text("[agent]\ndebug_console = true\n")
    sb = ["--config", config, "--root", root]
    start_detached(*sb, tmp=tmp_path, cid="dbgc", args=["sleep", "4242"])
    try:
        seen, status = run_in_console(*sb, vm="dbgc", command="ps -o pid,args")
        assert status == 0, seen
        lines = [ln.split(None, 1) for ln in seen.splitlines() if ln.strip()[:1].isdigit()]
        by_pid = {int(pid): args for pid, args in (ln for ln in lines if len(ln) == 2)}
        assert "/init" in by_pid.get(1, ""), seen  # the agent, PID 1 of the guest
        assert any("sleep 4242" in args for args in by_pid.values()), seen  # the container's
    finally:
        cli.run(*sb, "delete", "--force", "dbgc")


def test_debug_console_off_is_refused(root: Path, tmp_path: Path) -> None:
    sb = ["--root", root]
    start_detached(*sb, tmp=tmp_path, cid="dbgoff", args=["sleep", "600"])
    try:
        cli.assert_one_line_error(cli.run(*sb, "debug", "console", "dbgoff"),
                                  "the debug console is off", "[agent] debug_console = true")
    finally:
        cli.run(*sb, "delete", "--force", "dbgoff")
