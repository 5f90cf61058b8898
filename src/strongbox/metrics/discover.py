"""Discover finds the running sandboxes under the roots an exporter watches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from strongbox.runtime.paths import roots_under
from strongbox.sandbox.ownersocket import SOCKET
from strongbox.sandbox.rundir import run_dirs


@dataclass(frozen=True)
class Found:
    """One VM's run directory whose owner serves its socket."""

    name: str
    run_dir: Path

    @property
    def socket(self) -> Path:
        return self.run_dir / SOCKET


def sandboxes(roots: list[Path]) -> list[Found]:
    """Every run directory with an owner socket under ``roots`` and their client roots."""
    found: dict[Path, Found] = {}
    for root in roots:
        for each in roots_under(root):
            for path in run_dirs(each):
                if (path / SOCKET).exists():
                    found.setdefault(path.resolve(), Found(path.name, path))
    return sorted(found.values(), key=lambda f: str(f.run_dir))
