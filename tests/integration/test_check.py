"""``strongbox check`` on this machine, through the real CLI: what it reports here, and a
host condition made false (a missing QEMU, a missing guest kernel) turning the result and
the exit code. No VM boots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.framework import cli


def _checks(result: cli.Result) -> dict[str, dict[str, Any]]:
    report = json.loads(result.stdout)
    return {c["name"]: c for c in report["checks"]} | {"": {"ok": report["ok"]}}


def _paravirtual_kvm() -> bool:
    flags = " ".join(ln for ln in Path("/proc/cpuinfo").read_text().splitlines()
                     if ln.startswith("flags"))
    return Path("/dev/kvm").exists() and "vmx" not in flags.split() and "svm" not in flags.split()


def test_this_host_can_run_strongbox_and_says_how(guest_assets: dict[str, Path]) -> None:
    result = cli.run("check", "--json", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    checks = _checks(result)
    assert checks[""]["ok"] is True
    assert checks["qemu"]["status"] == "ok" and "version" in checks["qemu"]["detail"]
    accel = checks["accelerator"]
    if _paravirtual_kvm():  # this machine: TCG, and the reason
        assert accel["status"] == "warning" and "TCG" in accel["detail"], accel
        assert "no vmx/svm" in accel["detail"] and "paravirtualised KVM" in accel["detail"]
    else:
        assert accel["status"] == "ok", accel
    for name in ("boot assets", "tun", "cgroups", "mount API", "memory"):
        assert checks[name]["status"] == "ok", checks[name]
    assert {"guest kernel", "guest initrd", "vhost-net", "user namespaces", "template",
            "pool", "engine containerd", "engine podman", "engine docker"} <= set(checks)
    assert "strongbox: warning" not in result.stderr  # the reason is in the report, once


def test_a_missing_qemu_or_kernel_is_missing_with_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[hypervisor.qemu]\npath = "/nonexistent/qemu-system-x86_64"\n'
                      'kernel = "/nonexistent/vmlinux"\n')
    result = cli.run("--config", config, "check", "--json", timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    checks = _checks(result)
    assert checks[""]["ok"] is False
    assert checks["qemu"]["status"] == "missing"
    assert "/nonexistent/qemu-system-x86_64" in checks["qemu"]["detail"]
    assert checks["boot assets"]["status"] == "missing"
    assert "/nonexistent/vmlinux" in checks["boot assets"]["detail"]
    text = cli.run("--config", config, "check", timeout=120)
    assert text.returncode == 1 and "Traceback" not in text.stderr
    lines = text.stdout.splitlines()
    assert any(ln.startswith("MISSING  qemu") for ln in lines), text.stdout
    assert lines[-1] == "strongbox cannot run containers here: see MISSING above"
