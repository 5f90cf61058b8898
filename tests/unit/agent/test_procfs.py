"""procfs reads ps-style facts from /proc, tolerating processes that vanish."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from strongbox.agent.procfs import list_processes, process_info


def test_own_process() -> None:
    info = process_info(os.getpid())
    assert info is not None
    assert info["pid"] == os.getpid() and info["ppid"] == os.getppid()
    assert (info["uid"], info["gid"]) == (os.geteuid(), os.getegid())
    assert info["args"] == sys.orig_argv
    assert info["state"] == "R"
    assert info["start_time_ticks"] > 0 and info["cpu_ticks"] >= 0
    assert info["ns_pid"] == os.getpid()


def test_comm_with_spaces_and_parentheses() -> None:
    code = ("open('/proc/self/comm', 'w').write('a) b (c'); import sys; "
            "sys.stdout.write('x\\n'); sys.stdout.flush(); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", code, "arg with space"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"x\n"
        info = process_info(child.pid)
        assert info is not None
        assert info["comm"] == "a) b (c"
        assert info["args"][-1] == "arg with space"
        assert info["ppid"] == os.getpid()
    finally:
        child.communicate(b"")


def test_vanished_processes_are_left_out() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    time.sleep(0.01)
    assert process_info(child.pid) is None
    listed = list_processes([child.pid, os.getpid()])
    assert [p["pid"] for p in listed["processes"]] == [os.getpid()]
    assert listed["clock_ticks"] > 0 and listed["uptime_s"] > 0
