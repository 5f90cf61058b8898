"""Hostile input to the real `strongbox` command line: one error line, nothing booted, nothing left.

Each case is an input an adversarial run used to turn into a Python traceback
(often after a VM had booted): arguments too large for one frame to the guest,
files nested 100,000 deep, a lone surrogate in config.json, an ``update -r``
file that is missing or a directory, ids that runc refuses. Every one must
now be refused up front: exactly one ``strongbox: error:`` line, a non-zero
exit, no directory under the test's ``containers/`` or ``vms/`` and no QEMU
(the ``root`` fixture checks QEMU). None of these boots a VM, so none needs
the guest assets.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.framework import cli
from tests.framework.bundle import make_bundle, read_spec, write_spec

BIG_ARGS = ["echo", *["x" * 1000] * 1100]  # 1.1 MB: legal JSON, under config.json's 16 MiB
DEEP = "[" * 100_000 + "]" * 100_000


@dataclass
class Watched:
    """A CLI run, and whether a VM run directory ever appeared while it ran."""

    result: cli.Result
    seconds: float
    saw_vms: bool


class BadInput:
    """`strongbox` with a private root, and bundles to spoil."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp
        self._rootfs: Path | None = None

    def bundle(self, name: str, **changes: object) -> Path:
        if self._rootfs is None:
            self._rootfs = make_bundle(self.tmp / "base") / "rootfs"
        return make_bundle(self.tmp / name, rootfs=self._rootfs, **changes)

    def __call__(self, *args: str | Path) -> Watched:
        """Run the CLI, polling ``<root>/vms`` every few ms: no VM may even be prepared."""
        argv = cli.strongbox_argv("--root", self.root, *args)
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        saw_vms = False
        while proc.poll() is None and time.monotonic() - started < 120:
            saw_vms = saw_vms or any((self.root / "vms").glob("*"))
            time.sleep(0.002)
        out, err = proc.communicate(timeout=120)
        seconds = time.monotonic() - started
        saw_vms = saw_vms or (self.root / "vms").exists()  # vms/ itself outlives a boot
        return Watched(cli.Result(argv, proc.returncode, out, err), seconds, saw_vms)

    def refused(self, *args: str | Path, fragments: tuple[str, ...] = ()) -> str:
        """The one error line of a command that must fail before any work is left behind."""
        watched = self(*args)
        line = cli.assert_one_line_error(watched.result, *fragments)
        assert not watched.saw_vms, "a VM run directory was prepared"
        containers = self.root / "containers"
        left = sorted(p.name for p in containers.iterdir()) if containers.exists() else []
        assert not left, f"container records left behind: {left}"
        return line


@pytest.fixture
def bad(root: Path, tmp_path: Path) -> Iterator[BadInput]:
    yield BadInput(root, tmp_path)


def _file(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


# --- 9: larger than one frame to the guest, refused before booting -------------------------


@pytest.mark.parametrize("verb", ["run", "create"])
def test_arguments_too_large_for_the_guest_fail_before_booting(bad: BadInput, verb: str) -> None:
    bundle = bad.bundle("big", args=BIG_ARGS)
    watched = bad(verb, "--bundle", bundle, "bad-input-big")
    line = cli.assert_one_line_error(
        watched.result, "config.json: too large for the guest", "create_container request",
        "over the 1 MiB (1048576 bytes) limit")
    assert not watched.saw_vms, f"a VM was prepared before refusing: {line}"
    assert watched.seconds < 20, watched.seconds
    assert not any((bad.root / "containers").glob("*"))


def test_exec_process_too_large_for_the_guest_is_refused_before_sending(bad: BadInput) -> None:
    process = _file(bad.tmp, "big.json", json.dumps({"args": BIG_ARGS, "cwd": "/"}))
    bad.refused("exec", "--process", process, "anything", fragments=(
        f"--process {process}: too large for the guest", "exec_process request",
        "over the 1 MiB (1048576 bytes) limit"))


# --- 10: nested 100,000 deep ------------------------------------------------------------------


def test_deep_process_file_is_one_line(bad: BadInput) -> None:
    process = _file(bad.tmp, "deep.json", DEEP)
    bad.refused("exec", "--process", process, "anything",
                fragments=(f"--process {process}: invalid JSON: nested more than 64 levels",))


def test_deep_resources_file_is_one_line(bad: BadInput) -> None:
    resources = _file(bad.tmp, "deep.json", DEEP)
    bad.refused("update", "-r", resources, "anything",
                fragments=(f"--resources {resources}: invalid JSON: nested more than 64",))


def test_deep_config_json_is_one_line(bad: BadInput) -> None:
    bundle = bad.bundle("deep")
    spec = json.dumps(read_spec(bundle))
    (bundle / "config.json").write_text(spec[:-1] + ', "x": ' + DEEP + "}")
    bad.refused("run", "--bundle", bundle, "bad-input-deep",
                fragments=("config.json: invalid JSON",))


# --- 11: a lone surrogate in config.json --------------------------------------------------------


@pytest.mark.parametrize("verb", ["run", "create"])
def test_lone_surrogate_in_config_json_names_the_field(bad: BadInput, verb: str) -> None:
    bundle = bad.bundle("surrogate")
    spec = read_spec(bundle)
    spec["process"]["env"] = ["TERM=xterm", "PATH=/bin\ud800"]
    (bundle / "config.json").write_text(json.dumps(spec))  # ensure_ascii: the \ud800 escape
    line = bad.refused(verb, "--bundle", bundle, "bad-input-sur", fragments=(
        "config.json: process.env[1]: expected Unicode text, got a lone surrogate (\\ud800)",))
    assert len(line) < 200, line


# --- 13: update -r on a missing file or a directory ------------------------------------------


def test_update_resources_missing_file(bad: BadInput) -> None:
    missing = bad.tmp / "nope.json"
    bad.refused("update", "-r", missing, "anything",
                fragments=(f"--resources {missing}: no such file",))


def test_update_resources_directory(bad: BadInput) -> None:
    bad.refused("update", "-r", bad.tmp, "anything",
                fragments=(f"--resources {bad.tmp}: cannot read: is a directory",))


def test_exec_process_missing_file(bad: BadInput) -> None:
    missing = bad.tmp / "nope.json"
    bad.refused("exec", "--process", missing, "anything",
                fragments=(f"--process {missing}: no such file",))


# --- 14: ids runc refuses ---------------------------------------------------------------------

BAD_IDS = ["bad-input\n", "bad-input-caf\u00e9"]


@pytest.mark.parametrize("container_id", BAD_IDS, ids=["trailing-newline", "non-ascii"])
@pytest.mark.parametrize("verb", ["create", "run"])
def test_bad_ids_are_refused_before_any_work(bad: BadInput, verb: str,
                                             container_id: str) -> None:
    bundle = bad.bundle("ok")
    write_spec(bundle, read_spec(bundle))
    bad.refused(verb, "--bundle", bundle, container_id,
                fragments=("container id", "expected ASCII letters"))


@pytest.mark.parametrize("container_id", BAD_IDS, ids=["trailing-newline", "non-ascii"])
@pytest.mark.parametrize("command", [["start"], ["delete"], ["exec", "true"]])
def test_bad_ids_are_refused_by_the_verbs_on_a_container(bad: BadInput, command: list[str],
                                                         container_id: str) -> None:
    bad.refused(command[0], container_id, *command[1:],
                fragments=("container id", "expected ASCII letters"))


@pytest.mark.parametrize("command", [["kill"], ["pause"], ["resume"], ["state"], ["ps"],
                                     ["update", "--pids-limit", "5"], ["events", "--stats"]])
def test_bad_ids_are_refused_by_every_verb(bad: BadInput, command: list[str]) -> None:
    bad.refused(command[0], "bad-input\n", *command[1:],
                fragments=("container id", "expected ASCII letters"))
