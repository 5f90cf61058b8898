"""`--debug` is a start's timeline: every phase of create, start, exit and teardown, timed,
as text lines and as JSON fields in `--log-format json`."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.framework import cli
from tests.framework.containers import Bundles

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("factory_mode")]

#: The phases of `run`, in order (a clone's "template" phase comes first).
RUN_PHASES = ["cli start", "prepare", "qemu ready", "vm running", "agent ready", "network",
              "rootfs attached", "container created", "process started", "exit seen",
              "output flushed", "guest shutdown", "teardown"]


@pytest.fixture
def bundles(no_leaks: Path, tmp_path: Path, guest_assets: dict[str, Path]) -> Iterator[Bundles]:
    yield Bundles(tmp_path, no_leaks)


def _phases(stderr: str) -> list[str]:
    return re.findall(r": phase (.+?) \d+\.\d{3}s", stderr)


def test_debug_run_lists_every_phase_in_order(bundles: Bundles, factory_mode: str) -> None:
    result = bundles.run(bundles.make(["echo", "timed"]), container_id="timed1")
    assert result.stdout == "timed\n" and ": phase " not in result.stderr  # only with --debug
    argv = cli.strongbox_argv("--root", bundles.root, "--debug", "run", "--bundle",
                              bundles.make(["echo", "timed"]), "timed2")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=240, input="")
    assert proc.returncode == 0 and proc.stdout == "timed\n", proc.stderr
    phases = [p for p in _phases(proc.stderr) if p not in ("template", "clone identity",
                                                            "owner settled")]
    assert phases == RUN_PHASES, proc.stderr
    if factory_mode == "template":
        assert "phase template" in proc.stderr and "phase clone identity" in proc.stderr


def test_json_log_of_a_detached_container_has_phase_fields(bundles: Bundles,
                                                           tmp_path: Path) -> None:
    log_file = tmp_path / "log.json"
    common = ("--root", bundles.root, "--debug", "--log", log_file, "--log-format", "json")
    bundle = bundles.make(["true"])
    out, err = tmp_path / "out", tmp_path / "err"
    cli.run_to_files(cli.strongbox_argv(*common, "create", "--bundle", bundle, "tj1"),
                     out, err).check()
    cli.run(*common, "start", "tj1").check()
    cli.run(*common, "delete", "--force", "tj1").check()
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    timed = {r["phase"]: r for r in records if "phase" in r}
    for name in ("cli start", "agent ready", "container created", "process started",
                 "teardown"):
        assert name in timed, sorted(timed)
        assert isinstance(timed[name]["duration_s"], float) and timed[name]["duration_s"] >= 0
    assert timed["container created"]["subject"] == "tj1"

