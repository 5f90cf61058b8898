"""A warm VM pool for tests: ``strongbox factory serve`` on a private template and root."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.framework import cli
from tests.framework.procs import pids_with_cmdline, wait_until


def pool_status(config: Path) -> dict[str, Any]:
    """The running pool's status (``factory status --json``)."""
    result = cli.run("--config", config, "factory", "status", "--json").check()
    status = result.json()["pool"]
    assert status is not None, "no pool answers"
    return dict(status)


def keepers(marker: Path) -> list[int]:
    """Keeper processes of a pool (their command lines name its root)."""
    return pids_with_cmdline("strongbox.sandbox.pool.keeper", str(marker))


class WarmPool:
    """``factory serve`` for a config of its own (template on first use, ``size`` VMs)."""

    def __init__(self, base: Path, *, size: int, extra: str = "") -> None:
        self.base, self.size = base, size
        base.mkdir(parents=True, exist_ok=True)
        self.root = base / "root"
        self.config = base / "config.toml"
        self.config.write_text(f'{extra}[factory]\nenable_template = true\n'
                               f'template_path = "{base}/template"\nvm_cache_number = {size}\n')
        self.log = base / "pool.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait_free: int | None = None) -> WarmPool:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                cli.strongbox_argv("--config", self.config, "--root", self.root, "--debug",
                                   "factory", "serve"),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        want = self.size if wait_free is None else wait_free
        assert wait_until(lambda: self._free() >= want, 240, 0.5), \
            f"the pool did not fill:\n{self.log.read_text()[-3000:]}"
        return self

    def _free(self) -> int:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the pool exited:\n{self.log.read_text()[-3000:]}")
        result = cli.run("--config", self.config, "factory", "status", "--json")
        pool = json.loads(result.stdout)["pool"] if result.returncode == 0 else None
        return int(pool["free"]) if pool else -1

    def status(self) -> dict[str, Any]:
        return pool_status(self.config)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)
            self.process.wait(30)
        self.process = None

    def __enter__(self) -> WarmPool:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        deadline = time.monotonic() + 20
        while keepers(self.root) and time.monotonic() < deadline:
            time.sleep(0.2)
