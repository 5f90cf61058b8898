"""The debug console driven through a pseudo-terminal, as a person would (pexpect)."""

from __future__ import annotations

from pathlib import Path

import pexpect

from tests.framework import cli


def run_in_console(*sb: str | Path, vm: str, command: str) -> tuple[str, int]:
    """Open ``strongbox debug console VM``, run ``command`` at its prompt, ``exit``: what
    the command printed, and the console's exit status."""
    argv = cli.strongbox_argv(*sb, "debug", "console", vm)
    shell = pexpect.spawn(argv[0], [str(a) for a in argv[1:]], timeout=60, dimensions=(30, 100))
    try:
        shell.expect("strongbox-debug# ")
        shell.sendline(f"{command}; echo END-$((40+2))")
        shell.expect("END-42")
        seen = shell.before.decode(errors="replace")
        shell.sendline("exit")
        shell.expect(pexpect.EOF)
    finally:
        shell.close()
    return seen, int(shell.exitstatus if shell.exitstatus is not None else -1)


def start_detached(*sb: str | Path, tmp: Path, cid: str, args: list[str]) -> None:
    """``run -d`` a container of ``args`` (its stdio in files under ``tmp``)."""
    from tests.framework.bundle import make_bundle

    bundle = make_bundle(tmp / cid, args)
    started = cli.run_to_files(cli.strongbox_argv(*sb, "run", "-d", "--bundle", bundle, cid),
                               tmp / f"{cid}.out", tmp / f"{cid}.err")
    assert started.returncode == 0, started.stderr
