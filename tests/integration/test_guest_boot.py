"""A real microVM boots under QEMU, its agent answers, and nothing is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.framework import cli
from tests.framework.initrd import SILENT_INIT, busybox_initrd
from tests.framework.procs import qemu_pids, wait_until

pytestmark = pytest.mark.vm


def test_boot_reports_guest_and_cleans_up(no_leaks: Path, guest_assets: dict[str, Path]) -> None:
    report = cli.run("--root", no_leaks, "guest", "boot", "--json").check().json()
    assert report["kernel_release"].startswith("6.1.")
    assert report["cpus"] == 1
    # 256 MiB of RAM minus what the kernel reserves for itself.
    assert 200 * 1024 < report["mem_total_kib"] <= 256 * 1024
    assert 0 < report["mem_used_kib"] < report["mem_total_kib"]
    assert report["mem_available_kib"] < report["mem_total_kib"]
    assert report["guest_uptime_s"] > 0
    assert 0 < report["kernel_running_s"] <= report["agent_ready_s"] < report["stopped_s"]
    assert report["accelerator"] in ("kvm", "tcg")
    assert report["qemu_exit_status"] == 0  # the guest powered itself off


def test_boot_human_output(no_leaks: Path, guest_assets: dict[str, Path]) -> None:
    out = cli.run("--root", no_leaks, "guest", "boot").check().stdout
    assert "guest kernel   6.1." in out
    for label in ("QEMU started", "kernel running", "agent ready", "powered off"):
        assert label in out


def test_boot_sizes_follow_arguments(no_leaks: Path, guest_assets: dict[str, Path]) -> None:
    report = cli.run("--root", no_leaks, "guest", "boot", "--json", "--memory", "384",
                     "--vcpus", "2").check().json()
    assert report["cpus"] == 2
    assert 330 * 1024 < report["mem_total_kib"] <= 384 * 1024


def test_several_vms_side_by_side(no_leaks: Path, guest_assets: dict[str, Path]) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(
            lambda _: cli.run("--root", no_leaks, "guest", "boot", "--json", timeout=180),
            range(3),
        ))
    reports = [r.check().json() for r in results]
    assert len({r["name"] for r in reports}) == 3
    assert all(r["sessions"] == 1 for r in reports)  # each agent saw only its own host


def test_sigkill_of_host_side_leaves_no_qemu(root: Path, guest_assets: dict[str, Path]) -> None:
    proc = subprocess.Popen(cli.strongbox_argv("--root", root, "guest", "boot"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: qemu_pids(str(root)), timeout=30), "QEMU never started"
        time.sleep(0.2)  # mid-boot
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert wait_until(lambda: not qemu_pids(str(root)), timeout=5), "QEMU outlived strongbox"
    finally:
        if proc.poll() is None:
            proc.kill()
    # The killed owner's run directory is collected by the next command.
    assert list((root / "vms").iterdir())
    cli.run("--root", root, "guest", "boot", "--json").check()
    assert not list((root / "vms").iterdir())


def test_agent_that_never_answers_times_out(no_leaks: Path, tmp_path: Path,
                                            guest_assets: dict[str, Path]) -> None:
    silent = busybox_initrd(tmp_path / "silent.cpio", SILENT_INIT)
    started = time.monotonic()
    result = cli.run("--root", no_leaks, "guest", "boot", "--initrd", silent, "--timeout", "4")
    cli.assert_one_line_error(result, "did not answer within 4s")
    assert time.monotonic() - started < 60


def test_guest_that_dies_at_boot_is_reported(no_leaks: Path, tmp_path: Path,
                                            guest_assets: dict[str, Path]) -> None:
    crashing = busybox_initrd(tmp_path / "crash.cpio", "echo init failing; exit 3\n")
    result = cli.run("--root", no_leaks, "guest", "boot", "--initrd", crashing,
                     "--timeout", "60")
    cli.assert_one_line_error(result, "the VM exited during boot")


@pytest.mark.parametrize("option", ["--kernel", "--initrd"])
def test_missing_kernel_or_initrd(no_leaks: Path, option: str,
                                  guest_assets: dict[str, Path]) -> None:
    result = cli.run("--root", no_leaks, "guest", "boot", option, "/nonexistent/file")
    cli.assert_one_line_error(result, "/nonexistent/file", "no such file")


def test_no_assets_built(no_leaks: Path, tmp_path: Path) -> None:
    result = cli.run("--root", no_leaks, "--state-dir", tmp_path / "empty", "guest", "boot")
    cli.assert_one_line_error(result, "strongbox guest build")


def test_qemu_not_installed(no_leaks: Path, tmp_path: Path,
                            guest_assets: dict[str, Path]) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[hypervisor.qemu]\npath = "/nonexistent/qemu-system-x86_64"\n')
    result = cli.run("--root", no_leaks, "--config", config, "guest", "boot")
    cli.assert_one_line_error(result, "QEMU not found", "/nonexistent/qemu-system-x86_64")


def test_unwritable_root(tmp_path: Path, guest_assets: dict[str, Path]) -> None:
    readonly = tmp_path / "ro"
    readonly.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", readonly], check=True)
    try:
        result = cli.run("--root", readonly / "strongbox", "guest", "boot")
        cli.assert_one_line_error(result, str(readonly / "strongbox"), "Read-only file system")
        assert not qemu_pids(str(readonly))
    finally:
        subprocess.run(["umount", readonly], check=True)


def test_bad_config_key(no_leaks: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[hypervisor.qemu]\ndefault_memroy = 512\n")
    result = cli.run("--root", no_leaks, "--config", config, "guest", "boot")
    cli.assert_one_line_error(result, "unknown key", "hypervisor.qemu.default_memroy")


def test_forced_kvm_without_hardware_support(no_leaks: Path,
                                             guest_assets: dict[str, Path]) -> None:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    if os.access("/dev/kvm", os.R_OK | os.W_OK) and (" vmx" in cpuinfo or " svm" in cpuinfo):
        pytest.skip("this host has usable KVM")
    result = cli.run("--root", no_leaks, "guest", "boot", "--accel", "kvm")
    cli.assert_one_line_error(result, "accelerator kvm was requested")
