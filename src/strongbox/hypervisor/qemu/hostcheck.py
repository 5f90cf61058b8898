"""Hostcheck says whether this host can run QEMU guests as configured, and how.

``strongbox check`` asks every layer for its requirements; these are QEMU's:
the binary and its version, the accelerator it will use and why (KVM needs
``/dev/kvm`` and a CPU with vmx/svm; a paravirtual ``/dev/kvm`` without them
means TCG, slower but complete), SeaBIOS for ``q35``, and the guest kernel and
initrd it will boot.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from strongbox.config import QemuConfig
from strongbox.errors import AssetError, StrongboxError
from strongbox.guest.assets import resolve_boot_assets
from strongbox.hypervisor.base import MISSING, OK, WARNING, Finding
from strongbox.hypervisor.qemu.accel import choose
from strongbox.hypervisor.qemu.driver import SEABIOS, find_qemu

#: The BIOS image q35 boots from (QEMU's default for the PC machines).
BIOS = "bios-256k.bin"


def _binary(config: QemuConfig) -> Finding:
    try:
        path = find_qemu(config.path)
    except StrongboxError as exc:
        return Finding("qemu", MISSING, str(exc))
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Finding("qemu", MISSING, f"{path} --version failed: {exc}")
    first = out.stdout.splitlines()[0] if out.stdout else ""
    if out.returncode != 0 or "version" not in first:
        return Finding("qemu", MISSING, f"{path} --version: {out.stderr.strip() or first}")
    return Finding("qemu", OK, f"{first.removeprefix('QEMU emulator ')} ({path})")


def _accelerator(config: QemuConfig) -> Finding:
    try:
        accel = choose(config.accelerator, warn=False)
    except StrongboxError as exc:
        return Finding("accelerator", MISSING, str(exc))
    if accel.name == "kvm":
        return Finding("accelerator", OK, f"KVM: {accel.reason}")
    if accel.reason == "configured":
        return Finding("accelerator", OK, "TCG emulation (hypervisor.qemu.accelerator = tcg)")
    return Finding("accelerator", WARNING, f"TCG emulation, slower: {accel.reason}")


def _firmware(config: QemuConfig) -> Finding | None:
    if config.machine_type != "q35":
        return None  # microvm enters the kernel directly
    bios = Path(SEABIOS) / BIOS
    if bios.is_file():
        return Finding("firmware", OK, f"SeaBIOS for q35 ({bios})")
    return Finding("firmware", MISSING, f"machine_type = 'q35' needs SeaBIOS: {bios} is missing "
                   "(Debian's seabios package)")


def _guest(config: QemuConfig, state_dir: Path) -> Finding:
    try:
        kernel, initrd = resolve_boot_assets(state_dir, config.kernel, config.initrd)
    except AssetError as exc:
        return Finding("boot assets", MISSING, str(exc))
    sizes = ", ".join(f"{p.name} {os.path.getsize(p) / 2**20:.1f} MiB" for p in (kernel, initrd))
    return Finding("boot assets", OK, f"kernel {kernel.parent.name}, initrd {initrd.parent.name} "
                   f"({sizes})")


def qemu_checks(config: QemuConfig, state_dir: Path) -> list[Finding]:
    """QEMU's requirements, in the order ``strongbox check`` prints them."""
    found = [_binary(config), _accelerator(config), _firmware(config), _guest(config, state_dir)]
    return [f for f in found if f is not None]
