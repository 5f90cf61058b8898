"""Which CLI records ``strongbox gc`` takes for a crash's leftovers (the whole gc runs after
real crashes in tests/integration/test_gc.py)."""

from __future__ import annotations

import os
from pathlib import Path

from strongbox.runtime import gc
from strongbox.runtime.state import ContainerState, StateStore, process_start_ticks
from strongbox.status import CREATING, RUNNING, STOPPED
from tests.framework.procs import dead_process


def test_only_a_record_whose_monitor_died_mid_life_is_a_leftover(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    dead, dead_ticks = dead_process()
    me = (os.getpid(), process_start_ticks(os.getpid()))
    store.create(ContainerState("crashed", "/b", "/b/rootfs", RUNNING, monitor_pid=dead,
                                monitor_start=dead_ticks))
    store.create(ContainerState("ended", "/b", "/b/rootfs", STOPPED, monitor_pid=dead,
                                monitor_start=dead_ticks))  # waits for its engine's delete
    store.create(ContainerState("live", "/b", "/b/rootfs", RUNNING, monitor_pid=me[0],
                                monitor_start=me[1]))
    store.create(ContainerState("creating", "/b", "/b/rootfs", CREATING))  # no monitor yet
    found = gc.dead_records(tmp_path)
    assert [lo.name for lo in found] == ["crashed"]
    assert f"monitor pid {dead} gone" in found[0].parts[0]
    with store.lock("crashed"):  # a command holds it: busy, left alone
        assert gc.remove_record(found[0]) is False
    assert store.exists("crashed")
    assert gc.remove_record(found[0]) is True
    assert not store.exists("crashed") and store.ids() == ["creating", "ended", "live"]
