"""Namespaces and the file system view, checked from inside the container."""

from __future__ import annotations

import copy
import errno
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from strongbox.container import _syscalls
from strongbox.container.init import NO_PIVOT
from strongbox.container.launcher import LaunchRequest, kill_and_reap, launch
from tests.integration.container.runner import run, shell


def test_hostname_and_domainname_in_own_uts_namespace(spec: dict[str, Any],
                                                      shared_rootfs: Path) -> None:
    spec["hostname"] = "box"
    spec["domainname"] = "example.org"
    result = run(shell(spec, "hostname; cat /proc/sys/kernel/domainname"), shared_rootfs)
    assert result.stdout == "box\nexample.org\n"
    assert socket.gethostname() != "box"


def test_proc_shows_only_the_containers_processes(spec: dict[str, Any],
                                                  shared_rootfs: Path) -> None:
    result = run(shell(spec, "cat /proc/1/cmdline; echo; ls /proc | grep '^[0-9]'"),
                 shared_rootfs)
    cmdline, *pids = result.stdout.splitlines()
    assert "1" in pids
    assert all(int(p) < 10 for p in pids), pids
    assert cmdline.startswith("sh\0-c\0")


def test_new_network_namespace_has_only_loopback_and_it_is_up(
        spec: dict[str, Any], shared_rootfs: Path) -> None:
    result = run(shell(spec, "ls /sys/class/net; cat /sys/class/net/lo/flags"), shared_rootfs)
    assert result.stdout == "lo\n0x9\n"  # IFF_UP | IFF_LOOPBACK


def test_masked_paths_read_empty(spec: dict[str, Any], shared_rootfs: Path) -> None:
    masked = [p for p in spec["linux"]["maskedPaths"] if Path(p).exists()]
    assert "/proc/timer_list" in masked and "/proc/acpi" in masked
    result = run(shell(spec, "wc -c < /proc/timer_list; ls -A /proc/acpi | wc -l; "
                       "test -e /proc/kcore && wc -c < /proc/kcore || echo 0"), shared_rootfs)
    assert result.stdout.split() == ["0", "0", "0"]


def test_readonly_paths_refuse_writes(spec: dict[str, Any], shared_rootfs: Path) -> None:
    result = run(shell(spec, "echo x > /proc/sys/kernel/domainname"), shared_rootfs)
    assert result.exit_code != 0
    assert "Read-only file system" in result.stderr


def test_readonly_root_refuses_writes(spec: dict[str, Any], shared_rootfs: Path) -> None:
    result = run(shell(spec, "touch /x"), shared_rootfs)
    assert result.exit_code == 1
    assert result.stderr == "touch: /x: Read-only file system\n"


def test_writable_root_when_not_readonly(spec: dict[str, Any], writable_rootfs: Path) -> None:
    spec["root"]["readonly"] = False
    result = run(shell(spec, "echo hi > /x && cat /x"), writable_rootfs)
    assert result.stdout == "hi\n"
    assert (writable_rootfs / "x").read_text() == "hi\n"


def test_sysctl_is_written_in_the_containers_namespace(spec: dict[str, Any],
                                                       shared_rootfs: Path) -> None:
    spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmni": "1000"}
    result = run(shell(spec, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni"),
                 shared_rootfs)
    assert result.stdout == "1\n1000\n"
    assert Path("/proc/sys/kernel/shmmni").read_text() != "1000\n"


def test_default_devices_and_links(spec: dict[str, Any], shared_rootfs: Path) -> None:
    spec["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                 "fileMode": 0o620, "uid": 0, "gid": 5}]
    result = run(shell(spec, "cd /dev && stat -c '%n %t:%T %a' null zero full random urandom "
                       "tty fuse; for l in fd stdin stdout stderr ptmx; do readlink $l; done; "
                       "echo data > /dev/null && head -c 3 /dev/zero | wc -c"), shared_rootfs)
    assert result.stdout.splitlines() == [
        "null 1:3 666", "zero 1:5 666", "full 1:7 666", "random 1:8 666", "urandom 1:9 666",
        "tty 5:0 666", "fuse a:e5 620",
        "/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2", "pts/ptmx",
        "3",
    ]


def test_cgroup_type_mounts_cgroup2(spec: dict[str, Any], shared_rootfs: Path) -> None:
    result = run(shell(spec, "grep ' /sys/fs/cgroup ' /proc/mounts"), shared_rootfs)
    assert result.stdout.startswith("cgroup /sys/fs/cgroup cgroup2 ro,")


def test_joining_namespaces_of_another_container_by_path(spec: dict[str, Any],
                                                         shared_rootfs: Path) -> None:
    first = copy.deepcopy(spec)
    first["process"]["args"] = ["sleep", "60"]
    null = os.open("/dev/null", os.O_RDWR)
    try:
        launched = launch(LaunchRequest(container_id="a", spec=first, rootfs=str(shared_rootfs),
                                        stdio=(null, null, null)))
    finally:
        os.close(null)
    launched.start()
    launched.close()
    try:
        pid = launched.pid
        spec["linux"]["namespaces"] = [
            {"type": "mount"}, {"type": "uts"},
            {"type": "pid", "path": f"/proc/{pid}/ns/pid"},
            {"type": "network", "path": f"/proc/{pid}/ns/net"},
            {"type": "ipc", "path": f"/proc/{pid}/ns/ipc"},
        ]
        result = run(shell(spec, "readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; "
                           "cat /proc/1/cmdline; echo; echo $$"), shared_rootfs)
        net, ipc, cmdline, own_pid = result.stdout.splitlines()
        assert net == os.readlink(f"/proc/{pid}/ns/net")
        assert ipc == os.readlink(f"/proc/{pid}/ns/ipc")
        assert cmdline == "sleep\0" + "60\0"
        assert own_pid != "1"
    finally:
        kill_and_reap(launched.pid)


def test_shared_root_propagation_still_pivots(spec: dict[str, Any],
                                              shared_rootfs: Path) -> None:
    spec["linux"]["rootfsPropagation"] = "rshared"
    result = run(shell(spec, "awk '$5 == \"/\"' /proc/self/mountinfo"), shared_rootfs)
    assert "shared:" in result.stdout


def test_move_and_chroot_fallback_when_pivot_root_is_refused(
        spec: dict[str, Any], shared_rootfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What happens on an initramfs root, simulated: the forked child inherits the patch."""

    def refuse(new_root: str, put_old: str) -> None:
        raise OSError(errno.EINVAL, "pivot_root: Invalid argument")

    monkeypatch.setattr(_syscalls, "pivot_root", refuse)
    null = os.open("/dev/null", os.O_RDWR)
    try:
        launched = launch(LaunchRequest(container_id="t", spec=shell(spec, "true"),
                                        rootfs=str(shared_rootfs), stdio=(null, null, null)))
    finally:
        os.close(null)
    assert launched.notes == [NO_PIVOT]
    launched.close()
    kill_and_reap(launched.pid)
    result = run(shell(spec, "ls /; touch /x; cat /proc/self/cgroup > /dev/null && echo ok"),
                 shared_rootfs)
    assert "bin" in result.stdout.split() and result.stdout.splitlines()[-1] == "ok", result
    assert result.stderr == "touch: /x: Read-only file system\n"
