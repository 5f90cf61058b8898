"""Running the real ``strongbox`` command line, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The interpreter running the tests is the project's virtualenv.
PYTHON = sys.executable


@dataclass
class Result:
    """What one CLI invocation did."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def error_lines(self) -> list[str]:
        """stderr without the accelerator warning every TCG run prints."""
        return [ln for ln in self.stderr.splitlines()
                if ln.strip() and "using TCG emulation" not in ln]

    def check(self) -> Result:
        assert self.returncode == 0, (
            f"{' '.join(self.argv)} exited {self.returncode}\n"
            f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        )
        return self


def strongbox_argv(*args: str | Path) -> list[str]:
    return [PYTHON, "-m", "strongbox", *map(str, args)]


def run(*args: str | Path, timeout: float = 300, env: dict[str, str] | None = None,
        input: str | None = None) -> Result:
    argv = strongbox_argv(*args)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, input=input)
    return Result(argv, proc.returncode, proc.stdout, proc.stderr)


def run_to_files(argv: list[str], out: Path, err: Path, timeout: float = 120) -> Result:
    """Run ``argv`` with files for stdout and stderr: a container started by create or
    ``run -d`` keeps the command's stdio (it is the monitor's to relay), so with pipes
    the caller would wait for an end of file that only comes with the container."""
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                              timeout=timeout)
    return Result(argv, proc.returncode, "", err.read_text())


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """A user error: non-zero exit, exactly one error line, no traceback."""
    assert result.returncode != 0, f"expected failure, got success:\n{result.stdout}"
    lines = result.error_lines
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, f"expected one error line, got:\n{result.stderr}"
    line = lines[0]
    assert line.startswith("strongbox: error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line
