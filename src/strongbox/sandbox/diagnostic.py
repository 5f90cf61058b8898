"""Diagnostic boot: start a VM, report what the guest sees and how long it took.

This is ``strongbox guest boot`` and the boot benchmark. The timeline is in
seconds since QEMU was launched. The host measures launch and agent-ready
itself; the guest's own boot clock places "kernel running" (the moment the
guest clock started) and "/init started" on the same axis.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

from strongbox.config import Config
from strongbox.hypervisor import open_vmm
from strongbox.hypervisor.base import VMM, VMSpec
from strongbox.protocol import verbs
from strongbox.sandbox.rundir import RunDir
from strongbox.sandbox.vm import GuestVM


def boot_and_report(config: Config, *, state_dir: Path, root: Path,
                    memory_mib: int | None = None, vcpus: int | None = None,
                    kernel: str | None = None, initrd: str | None = None,
                    timeout: float | None = None, accelerator: str | None = None,
                    machine_type: str | None = None) -> dict[str, Any]:
    """Boot one VM (the configured guest, or ``kernel``/``initrd``/``accelerator``/
    ``machine_type`` instead), ask the agent what it sees, power it off; the report."""
    config = config.with_guest(kernel=kernel, initrd=initrd, accelerator=accelerator,
                               machine_type=machine_type)
    vmm = open_vmm(config, state_dir)
    shape = vmm.shape()
    name = f"boot-{secrets.token_hex(4)}"
    run_dir = RunDir.create(root, name)
    try:
        spec = vmm.vm_spec(name=name, run_dir=run_dir.path,
                           memory_mib=memory_mib or shape.default_memory_mib,
                           vcpus=vcpus or shape.default_vcpus)
        report = asyncio.run(_boot(config, vmm, spec, timeout or config.agent.dial_timeout))
        report["machine"] = config.hypervisor.qemu.machine_type
    finally:
        run_dir.remove()
    return report


async def _boot(config: Config, vmm: VMM, spec: VMSpec, timeout: float) -> dict[str, Any]:
    vm = GuestVM(vmm.new_vm(spec), request_timeout=config.agent.request_timeout)
    try:
        await vm.boot(timeout)
        asked = time.monotonic()
        info = await vm.call(verbs.GUEST_INFO)
        answered = time.monotonic()
        status = await vm.shutdown()
        stopped = time.monotonic()
    finally:
        await vm.destroy()
    t0 = vm.launched_at
    kernel_running = vm.vmm.running_at - t0
    # Early in boot the guest clock is unreliable under emulation, but once
    # the agent runs it keeps time: place "agent started" by its distance
    # from the guest_info answer, whose host time we know.
    answered_mid = (asked + answered) / 2 - t0
    agent_started = answered_mid - (info["uptime_s"] - info["agent_started_s"])
    report: dict[str, Any] = {k: v for k, v in info.items() if not k.endswith("_s")}
    report["guest_uptime_s"] = info["uptime_s"]
    report.update(
        accelerator=vm.vmm.accel.name,
        name=spec.name,
        memory_mib=spec.memory_mib,
        qemu_started_s=round(vm.vmm.qmp_ready_at - t0, 4),
        kernel_running_s=round(max(0.0, kernel_running), 4),
        agent_started_s=round(max(kernel_running, agent_started), 4),
        agent_ready_s=round(vm.ready_at - t0, 4),
        stopped_s=round(stopped - t0, 4),
        qemu_exit_status=status,
    )
    return report
