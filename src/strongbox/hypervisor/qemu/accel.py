"""Accel decides between KVM and TCG, and says why when it cannot use KVM.

KVM needs more than a ``/dev/kvm`` that opens: some hosts (nested clouds,
paravirtualised KVM) expose one whose CPUs lack ``vmx``/``svm``. A standard
guest kernel appears to start there and then crawls, so "auto" picks KVM
only when both hold and otherwise falls back to QEMU's TCG emulation, which
every test passes on.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from strongbox.errors import ConfigError, HypervisorError
from strongbox.hypervisor.base import Accelerator

__all__ = ["Accelerator", "choose"]

log = logging.getLogger("strongbox.hypervisor")
_warned = False


def _kvm_problem(kvm: Path, cpuinfo: Path) -> str | None:
    """Why KVM is unusable here, or None if it is usable."""
    try:
        fd = os.open(kvm, os.O_RDWR | os.O_CLOEXEC)
        os.close(fd)
    except OSError as exc:
        return f"cannot open {kvm}: {exc.strerror}"
    try:
        flags = set()
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
    except OSError as exc:
        return f"cannot read {cpuinfo}: {exc.strerror}"
    if not flags & {"vmx", "svm"}:
        return f"{kvm} exists but the CPU has no vmx/svm (paravirtualised KVM: guests would crawl)"
    return None


def choose(requested: str, kvm: Path = Path("/dev/kvm"),
           cpuinfo: Path = Path("/proc/cpuinfo"), warn: bool = True) -> Accelerator:
    """Resolve ``auto|kvm|tcg`` for this host, warning once when auto falls back (unless
    not ``warn``: the caller reports the reason itself)."""
    global _warned
    if requested == "tcg":
        return Accelerator("tcg", "configured")
    if requested not in ("auto", "kvm"):
        raise ConfigError(f"hypervisor.qemu.accelerator: expected auto, kvm or tcg, "
                          f"got {requested!r}")
    problem = _kvm_problem(kvm, cpuinfo)
    if problem is None:
        return Accelerator("kvm", "hardware virtualisation available")
    if requested == "kvm":
        raise HypervisorError(f"accelerator kvm was requested but {problem}")
    if warn and not _warned:
        log.warning("using TCG emulation (slower): %s", problem)
        _warned = True
    return Accelerator("tcg", problem)
