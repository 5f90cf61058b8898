"""The host-kernel findings on inputs shaped like real hosts' (the whole check runs in
tests/integration/test_check.py)."""

from __future__ import annotations

from pathlib import Path

from strongbox.config import parse_config
from strongbox.hostcheck import Report, facilities
from strongbox.hypervisor.base import MISSING, OK, WARNING, Finding

V1 = """\
30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid shared:10 - cgroup cgroup rw,memory
31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:11 - cgroup cgroup rw,cpu,cpuacct
32 25 0:28 / /sys/fs/cgroup/pids rw,nosuid shared:12 - cgroup cgroup rw,pids
"""


def test_cgroup_v1_with_the_controllers_needed_is_ok() -> None:
    found = facilities.cgroups(V1)
    assert found.status == OK and found.detail == "v1: cpu, cpuacct, memory, pids", found


def test_a_missing_controller_is_missing_and_named() -> None:
    found = facilities.cgroups("\n".join(V1.splitlines()[:2]) + "\n")
    assert found.status == MISSING and "no pids controller" in found.detail, found


def test_no_cgroup_mount_at_all_is_missing() -> None:
    assert facilities.cgroups("").status == MISSING


def test_memory_against_one_default_vm() -> None:
    assert facilities.memory(320, "MemTotal: 4096000 kB\nMemAvailable: 2048000 kB\n").detail \
        == "2,000 MiB available: about 6 default VMs of 320 MiB"
    short = facilities.memory(320, "MemAvailable: 102400 kB\n")
    assert short.status == MISSING and "100 MiB available, a default VM needs 320" in short.detail


def test_no_tun_is_missing_unless_networking_is_off(tmp_path: Path) -> None:
    gone = str(tmp_path / "tun")
    found = facilities.tun(parse_config({}), gone)
    assert found.status == MISSING and gone in found.detail and "internetworking_model" \
        in found.detail
    off = parse_config({"network": {"internetworking_model": "none"}})
    assert facilities.tun(off, gone).status == OK


def test_no_vhost_net_is_only_a_warning(tmp_path: Path) -> None:
    found = facilities.vhost_net(parse_config({}), str(tmp_path / "vhost-net"))
    assert found.status == WARNING and "QEMU moves every frame itself" in found.detail


def test_user_namespaces_are_reported_not_required(tmp_path: Path) -> None:
    limit = tmp_path / "max_user_namespaces"
    limit.write_text("0\n")
    assert facilities.user_namespaces(str(limit)).status == WARNING
    limit.write_text("100\n")
    assert facilities.user_namespaces(str(limit)).status == OK


def test_the_report_passes_unless_something_is_missing() -> None:
    warned = Report((Finding("a", OK, ""), Finding("b", WARNING, "slow")))
    assert warned.passed and warned.to_json()["ok"] is True
    missing = Report((*warned.findings, Finding("c", MISSING, "no")))
    assert not missing.passed
    assert missing.to_json()["checks"][2] == {"name": "c", "status": "missing", "detail": "no"}
