"""The runc-style verbs start in milliseconds: none of them imports the VM machinery.

``state``, ``start``, ``kill``, ``delete``, ``list``, ``ps``, ``pause``,
``resume`` and ``--version`` are called by containerd, podman and docker
around every container, often several times a second; each is one record
read or one request to the monitor. asyncio, QMP and the sandbox are for
the monitor (``create``/``run``) alone: importing them cost every one of
these calls about a tenth of a second (issue 14). Each command runs here in
a fresh interpreter, on the success path and on the error path, and the
modules it loaded are checked.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongbox.runtime.main import COMMANDS, build_parser
from strongbox.runtime.state import ContainerState, StateStore, process_start_ticks
from strongbox.status import CREATED

#: Modules (and their submodules) none of the fast verbs may load.
HEAVY = ("asyncio", "qemu.qmp", "strongbox.sandbox", "strongbox.runtime.lifecycle",
         "strongbox.runtime.monitor", "rich", "google.protobuf")

#: Runs main() on argv, then prints every loaded module after a marker line.
PROBE = (
    "import sys\n"
    "from strongbox.runtime.main import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    "sys.stdout.flush()\n"
    "print('\\n--modules--\\n' + '\\n'.join(sorted(sys.modules)))\n"
    "sys.exit(code)\n"
)


def _loaded(argv: list[str]) -> tuple[int, str, list[str]]:
    """(exit code, stderr, heavy modules loaded) of ``strongbox argv`` in a fresh process."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True,
                          text=True, timeout=60)
    modules = proc.stdout.partition("\n--modules--\n")[2]
    heavy = [m for m in modules.split() if m.startswith(HEAVY) and
             any(m == h or m.startswith(h + ".") for h in HEAVY)]
    return proc.returncode, proc.stderr, heavy


@pytest.fixture
def fake_monitor() -> Iterator[subprocess.Popen[bytes]]:
    """A live process standing in for a monitor (no control socket: it never answers)."""
    proc = subprocess.Popen(["sleep", "60"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def root(tmp_path: Path, fake_monitor: subprocess.Popen[bytes]) -> Path:
    """A runtime root with a created container whose monitor lives ("live") and one
    that never got a monitor ("quiet"), as ``create`` leaves them on disk."""
    root = tmp_path / "root"
    store = StateStore(root)
    ticks = process_start_ticks(fake_monitor.pid)
    assert ticks is not None
    for cid, pid, start in (("live", fake_monitor.pid, ticks), ("quiet", 0, None)):
        store.create(ContainerState(id=cid, bundle=str(tmp_path / cid),
                                    rootfs=str(tmp_path / cid / "rootfs"), status=CREATED,
                                    monitor_pid=pid, monitor_start=start))
    return root


#: (argv after ``--root R``, whether it succeeds): each verb on a live record, a record
#: without a monitor and an absent id. A live monitor that does not answer is
#: MonitorUnreachable, the one-line error a wedged or dying monitor gives.
CASES = [
    (["state", "live"], True), (["state", "quiet"], True), (["state", "absent"], False),
    (["list"], True), (["ls", "-q"], True), (["list", "--format", "json"], True),
    (["start", "live"], False), (["start", "absent"], False),
    (["kill", "live", "KILL"], False), (["kill", "quiet"], False), (["kill", "x", "BOGUS"], False),
    (["pause", "live"], False), (["resume", "live"], False), (["pause", "absent"], False),
    (["ps", "live"], False), (["ps", "--format", "json", "absent"], False),
    (["delete", "quiet"], True), (["delete", "absent"], False),
    (["delete", "live"], True),  # asks the socket, waits out the grace, kills the stand-in
    (["state", "bad id"], False),
]


@pytest.mark.parametrize(("argv", "succeeds"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_fast_verbs_leave_the_vm_machinery_alone(root: Path, argv: list[str],
                                                 succeeds: bool) -> None:
    code, stderr, heavy = _loaded(["--root", str(root), *argv])
    assert heavy == [], heavy
    assert (code == 0) == succeeds, stderr
    if not succeeds:
        assert stderr.startswith("strongbox: error: ") and stderr.count("\n") == 1, stderr


@pytest.mark.parametrize("argv", [["--version"], ["-v"], ["--help"], ["state", "--help"],
                                  ["bogus"], []])
def test_version_help_and_usage_errors_are_light_too(argv: list[str]) -> None:
    code, stderr, heavy = _loaded(argv)
    assert heavy == [], heavy
    assert code in (0, 2), stderr


def test_the_registry_lists_what_the_modules_declare() -> None:
    """COMMANDS (the help lines argparse shows before any module is loaded) equals what
    each module's ``register`` declares, names, aliases and help alike."""
    declared: dict[str, tuple[str, str, tuple[str, ...]]] = {}

    class Recorder:
        def __init__(self, module: str) -> None:
            self.module = module

        def add_parser(self, name: str, *, help: str, aliases: tuple[str, ...] = (),
                       **kwargs: Any) -> argparse.ArgumentParser:
            declared[name] = (self.module, help, tuple(aliases))
            return argparse.ArgumentParser(prog=name, **kwargs)

    for module in dict.fromkeys(m for m, _, _ in COMMANDS.values()):
        __import__(f"strongbox.runtime.commands.{module}")
        sys.modules[f"strongbox.runtime.commands.{module}"].register(Recorder(module))
    assert declared == COMMANDS
    assert list(declared) == list(COMMANDS)


def test_a_fully_loaded_parser_parses_as_the_lazy_one() -> None:
    lazy = build_parser().parse_args(["--root", "/r", "kill", "c1", "KILL", "--all"])
    eager = build_parser(load_all=True).parse_args(["--root", "/r", "kill", "c1", "KILL",
                                                    "--all"])
    assert vars(lazy) == vars(eager)
    assert lazy.func.__module__ == "strongbox.runtime.commands.control_cmds"
