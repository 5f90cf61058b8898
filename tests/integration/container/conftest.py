"""Fixtures for running real containers on this host: a busybox rootfs, leak checks.

Needs root (namespaces, mounts). While these tests run the test process
is a child subreaper, so anything a container leaves behind is reparented
here and the leak check can see it.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongbox.container._syscalls import PR_SET_CHILD_SUBREAPER, become_subreaper, prctl
from tests.framework.bundle import DEFAULT_SPEC, make_rootfs


@pytest.fixture(scope="package", autouse=True)
def _subreaper() -> Iterator[None]:
    """Subreaper for this package only: other tests' daemons must still go to the real init."""
    if os.geteuid() != 0:
        pytest.skip("container integration tests need root")
    become_subreaper()
    yield
    prctl(PR_SET_CHILD_SUBREAPER, 0)


@pytest.fixture(scope="session")
def shared_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One busybox rootfs for tests that keep the root read-only (the default spec's)."""
    return make_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture
def writable_rootfs(tmp_path: Path) -> Path:
    """A private rootfs for tests that write to it."""
    return make_rootfs(tmp_path / "rootfs")


@pytest.fixture
def spec() -> dict[str, Any]:
    """A deep copy of runc's default spec, for the test to adjust."""
    return copy.deepcopy(DEFAULT_SPEC)


def _mountinfo() -> list[str]:
    return sorted(Path("/proc/self/mountinfo").read_text().splitlines())


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """After every test: no child process left, no mount added to the host's namespace."""
    before = _mountinfo()
    yield
    survivors: list[str] = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:  # a live child: kill it, then fail
            survivors.extend(p for p in os.listdir("/proc") if p.isdigit()
                             and _ppid(int(p)) == os.getpid())
            for p in survivors:
                os.kill(int(p), 9)
            os.waitpid(-1, 0)
    assert not survivors, f"processes left behind: {survivors}"
    assert _mountinfo() == before, "container mounts leaked into the host namespace"


def _ppid(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(stat.rsplit(")", 1)[1].split()[1])
