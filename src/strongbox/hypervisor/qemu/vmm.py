"""Vmm is QEMU as the sandbox layer sees it: ``[hypervisor.qemu]`` turned into VMs.

It reads the configuration section once and answers the
:class:`~strongbox.hypervisor.base.VMM` questions: how big a guest is by
default, which accelerator guests run on, which kernel and initrd they boot
and with which command line, what a VM template depends on, and how to make
a :class:`~strongbox.hypervisor.qemu.driver.QemuVM` (jailed unless
``jailer = false``).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from strongbox.config import QemuConfig
from strongbox.guest.assets import resolve_boot_assets
from strongbox.hypervisor.base import Accelerator, ChildSetup, Finding, VMShape, VMSpec
from strongbox.hypervisor.jailer import JailPolicy
from strongbox.hypervisor.qemu.accel import choose
from strongbox.hypervisor.qemu.cmdline import BASE_KERNEL_PARAMS, TCG_KERNEL_PARAMS
from strongbox.hypervisor.qemu.driver import QemuVM, find_qemu
from strongbox.hypervisor.qemu.machine import Machine


def _stamp(path: Path) -> str:
    """A cheap identity for a file: size and modification time."""
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


class QemuVMM:
    """QEMU guests on one machine type, configured by one ``[hypervisor.qemu]`` table."""

    name = "qemu"

    def __init__(self, config: QemuConfig, state_dir: Path) -> None:
        self.config = config
        self.state_dir = state_dir
        self._accel: Accelerator | None = None
        self.machine = Machine(config.machine_type, config.pcie_root_port)

    def host_checks(self) -> list[Finding]:
        from strongbox.hypervisor.qemu.hostcheck import qemu_checks

        return qemu_checks(self.config, self.state_dir)

    def shape(self) -> VMShape:
        return VMShape(default_memory_mib=self.config.default_memory,
                       default_vcpus=self.config.default_vcpus,
                       memory_margin_mib=self.config.memory_margin,
                       max_vcpus=os.cpu_count() or 1,
                       block_devices=not self.config.disable_block_device_use,
                       hotplug_slots=self.machine.root_ports)

    def accelerator(self) -> Accelerator:
        if self._accel is None:
            self._accel = choose(self.config.accelerator)
        return self._accel

    def boot_assets(self) -> tuple[Path, Path]:
        """The guest kernel and initrd: configured paths, else the built assets."""
        return resolve_boot_assets(self.state_dir, self.config.kernel, self.config.initrd)

    def vm_spec(self, *, name: str, run_dir: Path, memory_mib: int, vcpus: int,
                **devices: Any) -> VMSpec:
        kernel, initrd = self.boot_assets()
        spec = VMSpec(name=name, kernel=kernel, initrd=initrd, memory_mib=memory_mib,
                      vcpus=vcpus, run_dir=run_dir, debug=self.config.enable_debug,
                      kernel_params=tuple(self.config.kernel_params.split()))
        return replace(spec, **devices)

    def new_vm(self, spec: VMSpec, child_setup: ChildSetup | None = None) -> QemuVM:
        qemu = self.config
        jail = JailPolicy(uid_base=qemu.jailer_uid_base, pids_max=qemu.jailer_pids_max,
                          memory_overhead_mib=qemu.jailer_memory_overhead) if qemu.jailer else None
        return QemuVM(spec, self.accelerator(), qemu.path, qemu.tcg_tb_size, child_setup,
                      jail=jail, log_cap=qemu.console_log_size * 1024, machine=self.machine)

    def identity(self, memory_mib: int, vcpus: int) -> dict[str, Any]:
        kernel, initrd = self.boot_assets()
        binary = Path(find_qemu(self.config.path))
        accel = self.accelerator()
        params = [*BASE_KERNEL_PARAMS, *self.machine.kernel_params(),
                  *(TCG_KERNEL_PARAMS if accel.name == "tcg" else ()),
                  *self.config.kernel_params.split()]
        return {
            "kernel": str(kernel), "kernel_stamp": _stamp(kernel),
            "initrd": str(initrd), "initrd_stamp": _stamp(initrd),
            "qemu": str(binary), "qemu_stamp": _stamp(binary),
            "accelerator": accel.name, "memory_mib": memory_mib, "vcpus": vcpus,
            "kernel_params": " ".join(params),
            # A saved guest's devices are the machine's: a clone must have the same board.
            "machine": self.machine.name, "pcie_root_port": self.machine.root_ports,
        }
