"""``strongbox ps --format json`` lists host pids: the monitor and what it runs."""

from __future__ import annotations

import os
import subprocess
import time

from strongbox.runtime.commands.inspect_cmds import host_processes


def test_host_processes_are_the_root_and_its_live_descendants() -> None:
    # sh forks a sleep (a grandchild of ours) and waits for it.
    child = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    try:
        for _ in range(200):
            found = host_processes(child.pid)
            if len(found) == 2:
                break
            time.sleep(0.01)
        assert found[0] == child.pid and len(found) == 2
        assert os.getpid() not in found  # never an ancestor, nor a sibling
        assert os.getpid() in host_processes(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_a_pid_with_no_children_is_alone() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert host_processes(proc.pid) == [proc.pid]
    finally:
        proc.kill()
        proc.wait()
