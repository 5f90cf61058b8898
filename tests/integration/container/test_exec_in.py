"""exec_in: a second process in a running container sees what its init sees."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongbox.container.errors import ContainerError
from strongbox.container.launcher import LaunchRequest, exec_in, kill_and_reap, launch
from tests.integration.container.runner import finish


@pytest.fixture
def running(spec: dict[str, Any], shared_rootfs: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """A container whose init sleeps; yields (init pid, spec); killed and reaped after."""
    spec["hostname"] = "exec-target"
    spec["process"]["args"] = ["sleep", "60"]
    null = os.open("/dev/null", os.O_RDWR)
    try:
        launched = launch(LaunchRequest(container_id="t", spec=spec, rootfs=str(shared_rootfs),
                                        stdio=(null, null, null)))
    finally:
        os.close(null)
    launched.start()
    launched.close()
    try:
        yield launched.pid, spec
    finally:
        kill_and_reap(launched.pid)


def _exec(pid: int, spec: dict[str, Any], process: dict[str, Any]) -> tuple[str, str, int, str]:
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    null = os.open("/dev/null", os.O_RDONLY)
    try:
        launched = exec_in(pid, process, spec, stdio=(null, out_w, err_w))
    finally:
        for fd in (out_w, err_w, null):
            os.close(fd)
    result = finish(launched, {out_r: b"", err_r: b""}, 10)
    return result.stdout, result.stderr, result.exit_code, result.exec_error or ""


def test_exec_in_shares_pid_mount_and_uts_namespaces(running: tuple[int, dict[str, Any]]
                                                     ) -> None:
    pid, spec = running
    process = {"args": ["sh", "-c", "hostname; cat /proc/1/cmdline; echo; echo $$; "
                        "touch /x; grep -c ' /proc ' /proc/mounts"],
               "env": ["PATH=/bin"], "cwd": "/"}
    out, err, _, _ = _exec(pid, spec, process)
    hostname, cmdline, own_pid, proc_mounts = out.splitlines()
    assert hostname == "exec-target"
    assert cmdline == "sleep\0" + "60\0"
    assert 1 < int(own_pid) < 10
    assert err == "touch: /x: Read-only file system\n"  # the same read-only root
    assert proc_mounts == "1"


def test_exec_in_applies_the_process_user_and_capabilities(
        running: tuple[int, dict[str, Any]]) -> None:
    pid, spec = running
    process = {"args": ["sh", "-c", "id -u; grep CapEff /proc/self/status; pwd"],
               "user": {"uid": 1000, "gid": 1000}, "cwd": "/home/user",
               "capabilities": {"bounding": ["CAP_KILL"]}, "noNewPrivileges": True}
    out, _, code, _ = _exec(pid, spec, process)
    assert out.split() == ["1000", "CapEff:", "0000000000000000", "/home/user"]
    assert code == 0


def test_exec_in_reports_a_missing_binary(running: tuple[int, dict[str, Any]]) -> None:
    pid, spec = running
    _, _, code, error = _exec(pid, spec, {"args": ["nope"], "env": ["PATH=/bin"]})
    assert (code, error) == (127, 'exec "nope": executable file not found in $PATH')


def test_exec_in_a_dead_container_fails(spec: dict[str, Any]) -> None:
    with pytest.raises(ContainerError, match=r"^container process 999999999: No such file"):
        exec_in(999999999, {"args": ["true"]}, spec, stdio=(0, 1, 2))
