"""Cgroup v2 on the host's (controller-less) unified hierarchy: join, list, freeze, kill, remove.

This host keeps its controllers on cgroup v1, but the core of cgroup v2
(cgroup.procs, cgroup.freeze, cgroup.events, cgroup.kill) works on the
empty unified hierarchy, which is enough to test joining and lifecycle for
real. Resource limits are tested against a fake tree (unit tests) and in
the VM.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongbox.container.cgroups import Cgroup
from strongbox.container.launcher import LaunchRequest, kill_and_reap, launch
from tests.framework.procs import wait_until
from tests.integration.container.runner import wait

UNIFIED = Path("/sys/fs/cgroup/unified")


@pytest.fixture
def cgroup() -> Iterator[Cgroup]:
    if not (UNIFIED / "cgroup.procs").exists():
        pytest.skip("no cgroup v2 hierarchy at /sys/fs/cgroup/unified")
    parent = Cgroup(str(UNIFIED / f"strongbox-test-{os.getpid()}"), root=str(UNIFIED))
    cg = Cgroup(f"{parent.path}/c1", root=str(UNIFIED))
    cg.create()
    try:
        yield cg
    finally:
        parent.destroy()


def test_container_joins_its_cgroup_and_sees_it_as_root(cgroup: Cgroup, spec: dict[str, Any],
                                                        shared_rootfs: Path) -> None:
    spec["linux"]["namespaces"].append({"type": "cgroup"})
    spec["process"]["args"] = ["sh", "-c", "grep '^0::' /proc/self/cgroup; sleep 60"]
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    null = os.open("/dev/null", os.O_RDWR)
    try:
        launched = launch(LaunchRequest(container_id="c", spec=spec, rootfs=str(shared_rootfs),
                                        stdio=(null, out_w, null), cgroup=cgroup.path))
    finally:
        os.close(out_w)
        os.close(null)
    try:
        launched.start()
        assert os.read(out_r, 100) == b"0::/\n"  # a new cgroup namespace rooted at its cgroup
        # grep wrote its line before it exited: wait for it to leave the cgroup
        assert wait_until(lambda: cgroup.procs() == [launched.pid], 5), cgroup.procs()
        cgroup.apply({"pids": {"limit": 10}})  # no pids controller on this hierarchy: skipped
        cgroup.freeze(timeout=5)
        assert "frozen 1" in (Path(cgroup.path) / "cgroup.events").read_text()
        cgroup.thaw(timeout=5)
        cgroup.destroy()
        assert not Path(cgroup.path).exists()
        assert os.WTERMSIG(wait(launched.pid, 5)) == 9
    except BaseException:
        kill_and_reap(launched.pid)
        raise
    finally:
        launched.close()
        os.close(out_r)
