"""The reaper collects every exited child and reports the watched ones."""

from __future__ import annotations

import os
import time
from pathlib import Path

from strongbox.agent.reaper import Reaper


def test_reaps_watched_and_unwatched_children() -> None:
    reaper = Reaper()
    statuses: list[int] = []
    watched = os.fork()
    if watched == 0:
        os._exit(7)
    unwatched = os.fork()
    if unwatched == 0:
        os._exit(0)
    reaper.watch(watched, statuses.append)
    deadline = time.monotonic() + 10
    while reaper.reaped < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
        reaper.reap()
    assert reaper.reaped == 2
    assert [os.waitstatus_to_exitcode(s) for s in statuses] == [7]
    for pid in (watched, unwatched):  # no zombie left
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or ") Z " not in stat.read_text()
