"""Accelerator choice: KVM needs both an openable /dev/kvm and vmx/svm."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongbox.errors import ConfigError, HypervisorError
from strongbox.hypervisor.qemu import accel


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n")
    return path


def test_kvm_when_device_opens_and_cpu_has_vmx(tmp_path: Path) -> None:
    choice = accel.choose("auto", kvm=Path("/dev/null"), cpuinfo=_cpuinfo(tmp_path, "vmx"))
    assert choice.name == "kvm"


def test_tcg_when_cpu_lacks_vmx_even_if_device_opens(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    accel._warned = False
    choice = accel.choose("auto", kvm=Path("/dev/null"), cpuinfo=_cpuinfo(tmp_path, "hypervisor"))
    assert choice.name == "tcg"
    assert "no vmx/svm" in choice.reason
    assert "using TCG emulation" in caplog.text
    caplog.clear()
    accel.choose("auto", kvm=Path("/dev/null"), cpuinfo=_cpuinfo(tmp_path, ""))
    assert caplog.text == ""  # warned once per process


def test_tcg_when_device_missing(tmp_path: Path) -> None:
    choice = accel.choose("auto", kvm=tmp_path / "kvm", cpuinfo=_cpuinfo(tmp_path, "svm"))
    assert choice.name == "tcg" and "cannot open" in choice.reason


def test_forced_values(tmp_path: Path) -> None:
    assert accel.choose("tcg", kvm=Path("/dev/null")).name == "tcg"
    with pytest.raises(HypervisorError, match="kvm was requested"):
        accel.choose("kvm", kvm=tmp_path / "kvm", cpuinfo=_cpuinfo(tmp_path, "vmx"))
    with pytest.raises(ConfigError):
        accel.choose("xen")
