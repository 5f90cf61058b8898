"""The host validates the agent's answers to the container verbs before using them."""

from __future__ import annotations

from typing import Any

import pytest

from strongbox.errors import AgentRequestError, SandboxError
from strongbox.sandbox.replies import (
    ContainerState,
    SandboxRequestError,
    processes_from_agent,
    stats_from_agent,
)

PROCESS: dict[str, Any] = {
    "pid": 42, "ppid": 1, "uid": 1000, "gid": 100, "ns_pid": 1, "state": "S", "comm": "sleep",
    "args": ["sleep", "100"], "tty_nr": 0, "cpu_ticks": 250, "start_time_ticks": 1000,
}


def test_process_list_with_times_in_seconds() -> None:
    [info] = processes_from_agent({"processes": [PROCESS], "clock_ticks": 100,
                                   "uptime_s": 15.5})
    assert (info.pid, info.ns_pid, info.args) == (42, 1, ("sleep", "100"))
    assert (info.start_time_s, info.elapsed_s, info.cpu_time_s) == (10.0, 5.5, 2.5)
    assert info.to_json()["args"] == ["sleep", "100"]


@pytest.mark.parametrize("bad", [
    {"pid": "42"}, {"args": "sleep 100"}, {"args": [1]}, {"uid": True}, {"state": None},
])
def test_malformed_process_entries_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(SandboxError, match="malformed process entry"):
        processes_from_agent({"processes": [{**PROCESS, **bad}], "clock_ticks": 100,
                              "uptime_s": 1.0})


def test_malformed_process_lists_are_refused() -> None:
    for data in ([PROCESS], {"processes": [], "clock_ticks": 0, "uptime_s": 1.0},
                 {"processes": [], "clock_ticks": 100}):
        with pytest.raises(SandboxError, match="malformed process list"):
            processes_from_agent(data)


def test_container_state() -> None:
    assert ContainerState.from_agent({"status": "stopped", "pid": 7, "exit_code": 3}) == \
        ContainerState("stopped", 7, 3)
    bad: Any
    for bad in ({"status": "sleeping", "pid": 7}, {"status": "running", "pid": "7"}, []):
        with pytest.raises(SandboxError):
            ContainerState.from_agent(bad)


def test_stats_shape() -> None:
    stats = {"status": "running", "procs": [5],
             "memory": {"current": 1, "max": None, "stat": {"anon": 3}, "oom_kill": 0},
             "pids": {"current": 1, "max": 3}, "cpu": {"usage_usec": 9}}
    assert stats_from_agent(stats) is stats
    bad: dict[str, Any]
    for bad in ({"memory": {"current": "1"}}, {"procs": ["5"]}, {"status": None},
                {"memory": {"stat": {"anon": "x"}}}, {"cpu": []}):
        with pytest.raises(SandboxError, match="malformed container statistics"):
            stats_from_agent({**stats, **bad})


def test_request_errors_keep_code_and_status() -> None:
    error = SandboxRequestError.from_agent(AgentRequestError(
        "pause_container", "invalid_state", "container 'c' is not running (it is paused)",
        {"status": "paused"}))
    assert (error.code, error.status) == ("invalid_state", "paused")
    assert str(error) == "container 'c' is not running (it is paused)"
    assert isinstance(error, SandboxError)
