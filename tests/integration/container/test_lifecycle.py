"""Launch, start, exec result, exit status, create-time errors: the Launched contract."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from strongbox.container.errors import ContainerError
from strongbox.container.launcher import LaunchRequest, launch
from tests.integration.container.runner import run, shell, wait


def test_exit_code_passes_through_and_shell_is_pid_1(spec: dict[str, Any],
                                                      shared_rootfs: Path) -> None:
    result = run(shell(spec, "echo $$; echo oops >&2; exit 42"), shared_rootfs)
    assert result.exec_error is None
    assert result.stdout == "1\n"
    assert result.stderr == "oops\n"
    assert result.exit_code == 42


def test_missing_binary_is_an_exec_error_with_status_127(spec: dict[str, Any],
                                                         shared_rootfs: Path) -> None:
    spec["process"]["args"] = ["no-such-program", "arg"]
    result = run(spec, shared_rootfs)
    assert result.exec_error == 'exec "no-such-program": executable file not found in $PATH'
    assert result.exit_code == 127


def test_non_executable_file_is_permission_denied_with_status_126(
        spec: dict[str, Any], shared_rootfs: Path) -> None:
    spec["process"]["args"] = ["/etc/passwd"]
    result = run(spec, shared_rootfs)
    assert result.exec_error == 'exec "/etc/passwd": permission denied'
    assert result.exit_code == 126


def test_failing_mount_raises_from_launch_and_leaves_no_process(
        spec: dict[str, Any], shared_rootfs: Path) -> None:
    spec["mounts"].append({"destination": "/broken", "type": "nosuchfs", "source": "none"})
    null = os.open("/dev/null", os.O_RDWR)
    try:
        with pytest.raises(ContainerError) as info:
            launch(LaunchRequest(container_id="t", spec=spec, rootfs=str(shared_rootfs),
                                 stdio=(null, null, null)))
    finally:
        os.close(null)
    assert info.value.stage == "mount"
    assert str(info.value) == "mount /broken: No such device"
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_missing_bind_source_names_it(spec: dict[str, Any], shared_rootfs: Path) -> None:
    spec["mounts"].append({"destination": "/data", "type": "bind", "source": "/no/such/dir",
                           "options": ["rbind"]})
    with pytest.raises(ContainerError, match=r"^mount /data: source /no/such/dir: No such file"):
        run(spec, shared_rootfs)


def test_spec_errors_are_raised_before_forking(spec: dict[str, Any],
                                               shared_rootfs: Path) -> None:
    spec["process"]["capabilities"]["bounding"].append("CAP_MAKE_COFFEE")
    with pytest.raises(ContainerError, match="CAP_MAKE_COFFEE") as info:
        run(spec, shared_rootfs)
    assert info.value.stage == "capabilities"
    spec = {**spec, "linux": {**spec["linux"], "namespaces": [{"type": "user"}]}}
    with pytest.raises(ContainerError, match=r"^a new mount namespace is required$"):
        run(spec, shared_rootfs)


def test_close_before_start_makes_the_process_exit_without_running(
        spec: dict[str, Any], shared_rootfs: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    spec["mounts"].append({"destination": "/out", "type": "bind", "source": str(tmp_path),
                           "options": ["rbind", "rw"]})
    null = os.open("/dev/null", os.O_RDWR)
    try:
        launched = launch(LaunchRequest(container_id="t", spec=shell(spec, "touch /out/ran"),
                                        rootfs=str(shared_rootfs), stdio=(null, null, null)))
    finally:
        os.close(null)
    launched.close()
    assert os.waitstatus_to_exitcode(wait(launched.pid, 5)) == 1
    assert not marker.exists()


def test_start_twice_is_an_error(spec: dict[str, Any], shared_rootfs: Path) -> None:
    null = os.open("/dev/null", os.O_RDWR)
    try:
        launched = launch(LaunchRequest(container_id="t", spec=shell(spec, "true"),
                                        rootfs=str(shared_rootfs), stdio=(null, null, null)))
    finally:
        os.close(null)
    try:
        launched.start()
        with pytest.raises(ContainerError, match="already started"):
            launched.start()
    finally:
        launched.close()
        wait(launched.pid, 5)


def test_environment_cwd_and_home(spec: dict[str, Any], shared_rootfs: Path) -> None:
    spec["process"]["env"] = ["PATH=/bin", "FOO=bar", "FOO=baz"]
    spec["process"]["cwd"] = "/dev/shm/work"  # created (on the tmpfs) if missing
    result = run(shell(spec, "pwd; env | sort"), shared_rootfs)
    lines = result.stdout.splitlines()
    assert lines[0] == "/dev/shm/work"
    assert "FOO=baz" in lines and "HOME=/root" in lines and "PATH=/bin" in lines
